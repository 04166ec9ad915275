package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/crowdsec"
	"github.com/sipwall/sipwall/internal/crowdsec/lapitest"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestFleetCrowdSec runs the real thing on both backends: Debian's CrowdSec
// LAPI in the server's namespace, `sipwall guard` with a crowdsec section
// and a feed, and packets from another namespace. A decision added with
// cscli (an address, a range, an IPv6 address) is enforced in the kernel
// within a pull; a deleted one is lifted; a feed entry is dropped; a ban
// guard makes from the PBX's log reaches the LAPI as a decision another
// bouncer pulls; a trusted source and the host's own address are never
// enforced.
func TestFleetCrowdSec(t *testing.T) {
	for _, be := range []string{"nftables", "iptables"} {
		t.Run(be, func(t *testing.T) { fleetCrowdSec(t, be) })
	}
}

func fleetCrowdSec(t *testing.T, be string) {
	nstest.RequireRoot(t, "nft", "ipset", "iptables-restore", "curl")
	bin := buildSipwall(t)
	srv, cli := nstest.New(t, "fleet-srv"), nstest.New(t, "fleet-cli")
	ctx := context.Background()
	const server = "192.0.2.10"
	for _, c := range [][]string{
		{"ip", "link", "add", "name", "eth0", "netns", srv, "type", "veth", "peer", "name", "eth0", "netns", cli},
		{"ip", "-n", srv, "link", "set", "eth0", "up"},
		{"ip", "-n", cli, "link", "set", "eth0", "up"},
		{"ip", "-n", srv, "addr", "add", server + "/24", "dev", "eth0"},
		{"ip", "-n", srv, "addr", "add", "2001:db8:10::10/64", "dev", "eth0", "nodad"},
		{"ip", "-n", srv, "route", "add", "203.0.113.0/24", "dev", "eth0"},
		{"ip", "-n", srv, "route", "add", "198.51.100.0/24", "dev", "eth0"},
		{"ip", "-n", srv, "-6", "route", "add", "2001:db8:20::/64", "dev", "eth0"},
		{"ip", "-n", cli, "route", "add", "192.0.2.0/24", "dev", "eth0"},
		{"ip", "-n", cli, "-6", "route", "add", "2001:db8:10::/64", "dev", "eth0"},
	} {
		nstest.Run(t, "", c...)
	}
	for _, a := range []string{"203.0.113.11/32", "203.0.113.33/32", "203.0.113.77/32", "203.0.113.99/32", "198.51.100.21/32"} {
		nstest.Run(t, "", "ip", "-n", cli, "addr", "add", a, "dev", "eth0")
	}
	nstest.Run(t, "", "ip", "-n", cli, "addr", "add", "2001:db8:20::66/128", "dev", "eth0", "nodad")

	// The LAPI, inside the server's namespace.
	// It listens on every address: node B reaches it over its own link.
	lapi := lapitest.Start(t, srv, "0.0.0.0:18080")
	lapiURL := "http://127.0.0.1:18080"
	dir := t.TempDir()
	keyFile := lapitest.WriteSecret(t, lapi.AddBouncer(t, "sipwall-"+be))
	pwFile := lapitest.WriteSecret(t, lapi.AddMachine(t, "pbx-"+be))
	feedFile := filepath.Join(dir, "voipbl.txt")
	os.WriteFile(feedFile, []byte("# a feed\n203.0.113.99\n192.0.2.10\n"), 0o644)
	logFile := filepath.Join(dir, "security")
	os.WriteFile(logFile, nil, 0o640)
	lab, _ := os.ReadFile("../../internal/lab/policy.yaml")
	pol := filepath.Join(dir, "sipwall.yaml")
	os.WriteFile(pol, []byte(string(lab)+fmt.Sprintf(`
trusted:
  all: [198.51.100.21]
accept:
  tcp: [8080, 18080]
guard:
  logs: [%s]
  maxretry: 3
  ignore_self: true
crowdsec:
  url: %s
  key_file: %s
  pull_every: 1s
  machine_id: pbx-%s
  password_file: %s
feeds:
  - {name: voipbl, url: %s, every: 1m}
`, logFile, lapiURL, keyFile, be, pwFile, feedFile)), 0o644)
	state := t.TempDir()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SSH_CONNECTION="}
	sip := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", srv, bin}, args...)...)
		cmd.Env = append(env, "SIPWALL_STATE_DIR="+state)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sipwall %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	applyArgs := []string{"apply", "-c", pol, "--backend", be, "--confirm", "0"}
	if be == "nftables" {
		applyArgs = append(applyArgs, "--without-guard") // started below
	}
	sip(applyArgs...)

	// A service on 8080 (accept.tcp) listens on the server: what the
	// fleet's bans cut is tested by connecting to it (not to SSH: a source
	// connected to SSH is never banned from outside).
	var ln4, ln6 net.Listener
	if err := netns.Do(srv, func() (err error) {
		if ln4, err = net.Listen("tcp", server+":8080"); err != nil {
			return err
		}
		ln6, err = net.Listen("tcp", "[2001:db8:10::10]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	defer ln6.Close()
	for _, ln := range []net.Listener{ln4, ln6} {
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(ln)
	}
	reach := func(src string) bool {
		dst := server + ":8080"
		if strings.Contains(src, ":") {
			dst = "[2001:db8:10::10]:8080"
		}
		ok := false
		netns.Do(cli, func() error {
			d := net.Dialer{Timeout: 400 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", dst)
			if err == nil {
				ok = true
				c.Close()
			}
			return nil
		})
		return ok
	}
	for _, a := range []string{"203.0.113.11", "203.0.113.77", "2001:db8:20::66"} {
		if !reach(a) {
			t.Fatalf("%s cannot reach SSH before any decision", a)
		}
	}

	var glog syncBuffer
	guard := exec.Command("ip", "netns", "exec", srv, bin, "guard", "-c", pol, "--state-dir", state, "--metrics", "off")
	guard.Env = env
	guard.Stdout, guard.Stderr = &glog, &glog
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- guard.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-guard.Process.Pid, syscall.SIGKILL)
		<-done
	})
	alive := func() {
		select {
		case err := <-done:
			t.Fatalf("guard exited: %v\n%s", err, glog.String())
		default:
		}
	}

	// The feed: its entry is dropped; the host's own address in it is not
	// enforced.
	waitUntil(t, 15*time.Second, "the feed's entry dropped", func() bool { alive(); return !reach("203.0.113.99") })
	if !strings.Contains(glog.String(), "entry=192.0.2.10/32") {
		t.Errorf("guard did not say it left the host's own address out of the feed:\n%s", glog.String())
	}

	// Decisions: an address, a range, an IPv6 address, and one for a
	// trusted source (never enforced).
	lapi.Cscli(t, "decisions", "add", "-i", "203.0.113.11", "-d", "1h", "-R", "test")
	lapi.Cscli(t, "decisions", "add", "-r", "203.0.113.64/26", "-d", "2h", "-R", "range")
	lapi.Cscli(t, "decisions", "add", "-i", "2001:db8:20::66", "-d", "1h", "-R", "v6")
	lapi.Cscli(t, "decisions", "add", "-i", "198.51.100.21", "-d", "1h", "-R", "trusted")
	for _, a := range []string{"203.0.113.11", "203.0.113.77", "2001:db8:20::66"} {
		waitUntil(t, 10*time.Second, a+" dropped after its decision", func() bool { alive(); return !reach(a) })
	}
	if !reach("198.51.100.21") {
		t.Error("a decision cut off a trusted source")
	}
	lists := sip("lists", "fleet")
	for _, want := range []string{"203.0.113.11", "203.0.113.64/26", "2001:db8:20::66", "crowdsec"} {
		if !strings.Contains(lists, want) {
			t.Errorf("lists fleet lacks %q:\n%s", want, lists)
		}
	}
	if strings.Contains(lists, "198.51.100.21") {
		t.Errorf("the trusted source is in the fleet list:\n%s", lists)
	}

	// Deleted: lifted.
	lapi.Cscli(t, "decisions", "delete", "-i", "203.0.113.11")
	lapi.Cscli(t, "decisions", "delete", "-r", "203.0.113.64/26")
	for _, a := range []string{"203.0.113.11", "203.0.113.77"} {
		waitUntil(t, 10*time.Second, a+" reachable after its decision was deleted", func() bool { alive(); return reach(a) })
	}

	// Watcher: three failures in the PBX's log ban 203.0.113.50; the ban
	// reaches the LAPI, and another host's bouncer pulls it.
	f, _ := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	for i := 0; i < 3; i++ {
		fmt.Fprintf(f, "[2026-12-01 10:00:%02d] NOTICE[1234] chan_sip.c: Registration from '<sip:10%d@pbx>' failed for '203.0.113.50:5060' - Wrong password\n", i, i)
	}
	f.Close()
	// A port scanner touches trap port 23: the kernel bans it, guard
	// pushes that ban too.
	netns.Do(cli, func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP("203.0.113.33")}}
		if c, err := d.Dial("tcp", server+":23"); err == nil {
			c.Close()
		}
		return nil
	})
	// Another host's bouncer: its pull, with curl inside the namespace
	// where the LAPI listens.
	otherKey := lapi.AddBouncer(t, "node-b-"+be)
	defer func() {
		if t.Failed() {
			t.Logf("guard:\n%s", glog.String())
		}
	}()
	waitUntil(t, 20*time.Second, "guard's bans (log and trap port) pulled by another bouncer", func() bool {
		alive()
		out, err := netns.Run(ctx, srv, nil, "curl", "-s", "-H", "X-Api-Key: "+otherKey, lapiURL+"/v1/decisions/stream?startup=true")
		if err != nil {
			return false
		}
		var s crowdsec.Stream
		if json.Unmarshal([]byte(out), &s) != nil {
			return false
		}
		auth, trap := false, false
		for _, d := range s.New {
			auth = auth || d.Value == "203.0.113.50" && d.Scenario == "sipwall/auth" && d.Type == "ban"
			trap = trap || d.Value == "203.0.113.33" && d.Scenario == "sipwall/trap" && d.Type == "ban"
		}
		return auth && trap
	})
	// Node B, another host sharing the LAPI over its own link: a second
	// sipwall (guard pulling only) and Debian's crowdsec-firewall-bouncer
	// both enforce node A's ban on their next pull.
	nodeB(t, be, bin, lapi, srv, "203.0.113.50")

	// crowdsec status: the LAPI reachable with the key, what guard's
	// bouncer, watcher and feed did (written every 5 s).
	waitUntil(t, 15*time.Second, "crowdsec status", func() bool {
		alive()
		cmd := exec.Command("ip", "netns", "exec", srv, bin, "crowdsec", "status", "-c", pol, "--state-dir", state, "--json")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			return false
		}
		var st struct {
			LAPI struct {
				Reachable bool `json:"reachable"`
			} `json:"lapi"`
			Guard bool `json:"guard_running"`
			Fleet struct {
				Bouncer struct{ Enforced int }  `json:"bouncer"`
				Watcher struct{ Pushed int }    `json:"watcher"`
				Feeds   []struct{ Entries int } `json:"feeds"`
			} `json:"fleet"`
		}
		if json.Unmarshal(out, &st) != nil {
			return false
		}
		return st.LAPI.Reachable && st.Guard && st.Fleet.Bouncer.Enforced >= 2 && st.Fleet.Watcher.Pushed >= 1 &&
			len(st.Fleet.Feeds) == 1 && st.Fleet.Feeds[0].Entries == 1
	})
	// Its own ban pulled back is harmless: it stays banned, once.
	out := sip("lists", "--json")
	var lj struct {
		Entries []struct {
			List, Addr string
		} `json:"entries"`
	}
	json.Unmarshal([]byte(out), &lj)
	n := 0
	for _, e := range lj.Entries {
		if strings.HasPrefix(e.Addr, "203.0.113.50") && e.List == "banned" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("203.0.113.50 in the banned list %d times:\n%s", n, out)
	}
}

// nodeB runs a second sipwall and crowdsec-firewall-bouncer in a namespace
// linked to srv (where the LAPI listens on 0.0.0.0:18080) and waits until
// both hold addr.
func nodeB(t *testing.T, be, bin string, lapi *lapitest.LAPI, srv, addr string) {
	t.Helper()
	nb := nstest.New(t, "fleet-b")
	for _, c := range [][]string{
		{"ip", "link", "add", "name", "fleet0", "netns", srv, "type", "veth", "peer", "name", "fleet1", "netns", nb},
		{"ip", "-n", srv, "addr", "add", "198.18.0.1/30", "dev", "fleet0"},
		{"ip", "-n", nb, "addr", "add", "198.18.0.2/30", "dev", "fleet1"},
		{"ip", "-n", srv, "link", "set", "fleet0", "up"},
		{"ip", "-n", nb, "link", "set", "fleet1", "up"},
	} {
		nstest.Run(t, "", c...)
	}
	const url = "http://198.18.0.1:18080"
	dir := t.TempDir()
	key := lapitest.WriteSecret(t, lapi.AddBouncer(t, "node-b-sipwall-"+be))
	pol := filepath.Join(dir, "b.yaml")
	os.WriteFile(pol, []byte(fmt.Sprintf(`interfaces: {public: [fleet+]}
ssh: {ports: [22]}
sip: {mode: open}
traps: {ports: {22: none}}
spoofing: {exempt: [198.18.0.0/30]}
accept: {tcp: [18080]}
guard: {metrics: "off", inspect: false}
crowdsec: {url: %q, key_file: %s, pull_every: 1s}
`, url, key)), 0o644)
	state := t.TempDir()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SSH_CONNECTION="}
	apply := exec.Command("ip", "netns", "exec", nb, bin, "apply", "-c", pol, "--backend", be, "--state-dir", state, "--confirm", "0")
	apply.Env = env
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("node B: sipwall apply: %v\n%s", err, out)
	}
	var glog syncBuffer
	guard := exec.Command("ip", "netns", "exec", nb, bin, "guard", "-c", pol, "--state-dir", state)
	guard.Env = env
	guard.Stdout, guard.Stderr = &glog, &glog
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-guard.Process.Pid, syscall.SIGKILL); guard.Wait() })

	// crowdsec-firewall-bouncer, as Debian ships it, in the same namespace
	// (its own nftables tables or ipsets).
	fwb := filepath.Join(lapi.Root, "usr/bin/crowdsec-firewall-bouncer")
	bkey := lapi.AddBouncer(t, "node-b-fwb-"+be)
	cfg := filepath.Join(dir, "fwb.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`mode: %s
pid_dir: %s
update_frequency: 1s
daemonize: false
log_mode: stdout
log_level: info
api_url: %s/
api_key: %s
disable_ipv6: false
deny_action: DROP
deny_log: false
supported_decisions_types: [ban]
blacklists_ipv4: crowdsec-blacklists
blacklists_ipv6: crowdsec6-blacklists
ipset_type: nethash
iptables_chains: [INPUT]
nftables:
  ipv4: {enabled: true, set-only: false, table: crowdsec, chain: crowdsec-chain}
  ipv6: {enabled: true, set-only: false, table: crowdsec6, chain: crowdsec6-chain}
prometheus: {enabled: false, listen_addr: 127.0.0.1, listen_port: 60601}
`, be, dir, url, bkey)), 0o600)
	var flog syncBuffer
	bouncer := exec.Command("ip", "netns", "exec", nb, fwb, "-c", cfg)
	bouncer.Stdout, bouncer.Stderr = &flog, &flog
	bouncer.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bouncer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-bouncer.Process.Pid, syscall.SIGKILL); bouncer.Wait() })

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node B guard:\n%s\nbouncer:\n%s", glog.String(), flog.String())
		}
	})
	ctx := context.Background()
	waitUntil(t, 20*time.Second, "node B's sipwall enforcing "+addr, func() bool {
		cmd := exec.Command("ip", "netns", "exec", nb, bin, "lists", "fleet", "--state-dir", state)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return strings.Contains(string(out), addr)
	})
	waitUntil(t, 20*time.Second, "crowdsec-firewall-bouncer enforcing "+addr, func() bool {
		var err error
		if be == "nftables" {
			_, err = netns.Run(ctx, nb, nil, "nft", "get", "element", "ip", "crowdsec", "crowdsec-blacklists", "{ "+addr+" }")
		} else {
			_, err = netns.Run(ctx, nb, nil, "ipset", "test", "crowdsec-blacklists", addr)
		}
		return err == nil
	})
}
