package lists_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	sw "github.com/sipwall/sipwall/internal/backend"
	_ "github.com/sipwall/sipwall/internal/backend/builtin"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

var backends = []string{"iptables", "nftables"}

// generation compiles examples/lab.yaml for backend.
func generation(t testing.TB, backend string) *apply.Generation {
	t.Helper()
	p, err := policy.LoadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: sw.Name(backend)})
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(rs, sw.Name(backend))
	if err != nil {
		t.Fatal(err)
	}
	g, err := apply.NewGeneration(sw.Name(backend), rs, files)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// lab is a server namespace with the lab ruleset applied by apply.Manager
// and, when wired, an "Internet" namespace holding the clients' addresses.
type lab struct {
	srv, inet string
	stateDir  string
	store     *lists.Store
}

func newLab(t testing.TB, backend string, wired bool) *lab {
	t.Helper()
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft", "conntrack")
	l := &lab{srv: nstest.New(t, "lsrv"), stateDir: t.TempDir()}
	ctx := context.Background()
	m := &apply.Manager{Host: sw.Host{NS: l.srv}, StateDir: l.stateDir}
	gen := generation(t, backend)
	gen.PolicyFile = "examples/lab.yaml"
	if _, err := m.Apply(ctx, gen, apply.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := lists.Open(ctx, l.stateDir, sw.Host{NS: l.srv})
	if err != nil {
		t.Fatal(err)
	}
	l.store = st
	if wired {
		l.inet = nstest.New(t, "linet")
		nstest.WireLab(t, l.srv, l.inet)
		for _, a := range []string{"198.51.100.21/32", "198.51.100.22/32", "203.0.113.11/32"} {
			nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", a, "dev", "eth0")
		}
		nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", "2001:db8:20::11/128", "dev", "eth0", "nodad")
		err := netns.Do(l.srv, func() error {
			ln, err := net.Listen("tcp", ":2222")
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// ssh reports whether src completes a TCP handshake with the server's SSH port.
func (l *lab) ssh(t *testing.T, src string, expect bool) bool {
	t.Helper()
	dst := "192.0.2.10:2222"
	if strings.Contains(src, ":") {
		dst = "[2001:db8:10::10]:2222"
	}
	wait := 700 * time.Millisecond
	if expect {
		wait = 5 * time.Second
	}
	var c net.Conn
	err := netns.Do(l.inet, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: wait}
		var err error
		c, err = d.Dial("tcp", dst)
		return err
	})
	if err == nil {
		c.Close()
	}
	return err == nil
}

// inKernel asks the kernel whether addr matches list (ipset test / nft get
// element; with nftables, in either set of banned and allowed).
func (l *lab) inKernel(t *testing.T, backend, list, addr string) bool {
	t.Helper()
	if backend == "iptables" {
		_, err := netns.Run(context.Background(), l.srv, nil, "ipset", "test", "sipwall-"+list+famSuffix(addr), addr)
		return err == nil
	}
	if list == compile.SetBanned || list == compile.SetAllowed {
		if l.inNFTSet(t, list+"-net", addr) {
			return true
		}
	}
	return l.inNFTSet(t, list, addr)
}

// inNFTSet asks the kernel whether addr matches the nftables set named set
// (without its family suffix).
func (l *lab) inNFTSet(t *testing.T, set, addr string) bool {
	t.Helper()
	_, err := netns.Run(context.Background(), l.srv, nil, "nft", "get", "element", "inet", "sipwall", set+famSuffix(addr), "{ "+addr+" }")
	return err == nil
}

func famSuffix(addr string) string {
	if strings.Contains(addr, ":") {
		return "6"
	}
	return "4"
}

func items(t testing.TB, d time.Duration, comment string, addrs ...string) []lists.Item {
	t.Helper()
	var out []lists.Item
	for _, a := range addrs {
		p, err := lists.ParseItem(compile.SetBanned, a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lists.Item{Prefix: p, For: d, Comment: comment})
	}
	return out
}

func prefixes(t testing.TB, addrs ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, it := range items(t, 0, "", addrs...) {
		out = append(out, it.Prefix)
	}
	return out
}

func find(es []lists.Entry, list, addr string) (lists.Entry, bool) {
	for _, e := range es {
		if e.List == list && e.Addr() == addr {
			return e, true
		}
	}
	return lists.Entry{}, false
}

// TestBanUnbanOnRealPackets bans an IPv4 address, an IPv6 address and a
// /24, checks that the kernel's sets match every address inside and that
// packets from them are dropped, then unbans and checks they pass again.
func TestBanUnbanOnRealPackets(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			l := newLab(t, b, true)
			ctx := context.Background()
			for _, src := range []string{"198.51.100.22", "203.0.113.11", "2001:db8:20::11"} {
				if !l.ssh(t, src, true) {
					t.Fatalf("%s cannot reach SSH before any ban", src)
				}
			}
			res, err := l.store.Ban(ctx, items(t, time.Hour, "brute force", "203.0.113.11", "2001:db8:20::11", "198.51.100.0/24"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Added != 3 {
				t.Errorf("added %d entries, want 3", res.Added)
			}
			for _, a := range []string{"203.0.113.11", "2001:db8:20::11", "198.51.100.22", "198.51.100.255", "198.51.100.0"} {
				if !l.inKernel(t, b, "banned", a) {
					t.Errorf("the kernel's banned set does not match %s", a)
				}
			}
			if l.inKernel(t, b, "banned", "198.51.101.1") || l.inKernel(t, b, "banned", "203.0.113.12") {
				t.Error("the banned set matches an address outside what was banned")
			}
			if b == "nftables" {
				// Addresses go to the hash sets banned4/6, networks to
				// the interval sets banned-net4/6.
				for _, c := range []struct {
					set, addr string
					in        bool
				}{
					{"banned", "203.0.113.11", true}, {"banned-net", "203.0.113.11", false},
					{"banned", "2001:db8:20::11", true}, {"banned-net", "2001:db8:20::11", false},
					{"banned-net", "198.51.100.22", true}, {"banned", "198.51.100.22", false},
				} {
					if got := l.inNFTSet(t, c.set, c.addr); got != c.in {
						t.Errorf("%s in set %s: %v, want %v", c.addr, c.set+famSuffix(c.addr), got, c.in)
					}
				}
				for _, c := range []struct{ set, flags string }{{"banned4", "flags timeout\n"}, {"banned-net4", "flags interval,timeout\n"}} {
					if got := nstest.Run(t, l.srv, "nft", "list", "set", "inet", "sipwall", c.set); !strings.Contains(got, c.flags) {
						t.Errorf("set %s is not declared with %q:\n%s", c.set, c.flags, got)
					}
				}
			}
			for _, src := range []string{"198.51.100.22", "203.0.113.11", "2001:db8:20::11"} {
				if l.ssh(t, src, false) {
					t.Errorf("%s still reaches SSH after the ban", src)
				}
			}
			if l.ssh(t, "198.51.100.21", false) {
				t.Error("198.51.100.21 (inside the banned /24) reaches SSH")
			}
			es, err := l.store.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := find(es, "banned", "198.51.100.0/24")
			if !ok {
				t.Fatalf("lists do not show the /24: %v", es)
			}
			if e.Remaining < 58*time.Minute || e.Remaining > time.Hour {
				t.Errorf("remaining %s, want about 1h", e.Remaining)
			}
			if b == "nftables" && e.Comment != "brute force" {
				t.Errorf("comment %q, want the reason", e.Comment)
			}

			// A single address inside the banned network cannot be unbanned alone.
			if _, err := l.store.Unban(ctx, prefixes(t, "198.51.100.22")); err == nil || !strings.Contains(err.Error(), "inside 198.51.100.0/24") {
				t.Errorf("unban of an address inside a banned network: %v", err)
			}
			if _, err := l.store.Unban(ctx, prefixes(t, "192.0.2.77")); err == nil || !strings.Contains(err.Error(), "none of the lists") {
				t.Errorf("unban of an address in no list: %v", err)
			}
			// Unban also removes a source from scanners and trapped.
			if _, err := l.store.Add(ctx, compile.SetScanners, items(t, 0, "", "203.0.113.11")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Add(ctx, compile.SetTrapped, items(t, 5*time.Minute, "", "203.0.113.11")); err != nil {
				t.Fatal(err)
			}
			res, err = l.store.Unban(ctx, prefixes(t, "203.0.113.11", "2001:db8:20::11", "198.51.100.0/24"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Removed != 5 {
				t.Errorf("removed %d entries, want 5 (3 banned, 1 scanners, 1 trapped)", res.Removed)
			}
			for _, list := range []string{"banned", "scanners", "trapped"} {
				if l.inKernel(t, b, list, "203.0.113.11") {
					t.Errorf("203.0.113.11 still in %s after unban", list)
				}
			}
			for _, src := range []string{"198.51.100.22", "203.0.113.11", "2001:db8:20::11"} {
				if !l.ssh(t, src, true) {
					t.Errorf("%s cannot reach SSH after the unban", src)
				}
			}
		})
	}
}

// TestBanRefreshAndOverlap: banning again replaces the timeout; a network
// over banned addresses replaces them (nft) and an address inside a banned
// network is reported, on ban and on unban.
func TestBanRefreshAndOverlap(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			l := newLab(t, b, false)
			ctx := context.Background()
			if _, err := l.store.Ban(ctx, items(t, time.Minute, "", "203.0.113.5")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Ban(ctx, items(t, 0, "", "203.0.113.5")); err != nil {
				t.Fatal(err)
			}
			es, _ := l.store.List(ctx, "banned")
			if e, ok := find(es, "banned", "203.0.113.5"); !ok || e.Remaining != 0 {
				t.Errorf("a ban without --for over a 1m ban: %+v, want no timeout", e)
			}
			if _, err := l.store.Ban(ctx, items(t, 0, "", "203.0.113.0/24")); err != nil {
				t.Fatal(err)
			}
			res, err := l.store.Ban(ctx, items(t, 0, "", "203.0.113.9"))
			if err != nil {
				t.Fatal(err)
			}
			if !l.inKernel(t, b, "banned", "203.0.113.9") {
				t.Error("203.0.113.9 not banned")
			}
			if b == "nftables" && (res.Added != 0 || len(res.Warnings) == 0) {
				t.Errorf("an address inside a banned network: %+v, want a warning and nothing added", res)
			}
			if b == "nftables" && l.inNFTSet(t, "banned", "203.0.113.9") {
				t.Error("an address inside a banned network went into banned4 too")
			}
			if b == "nftables" {
				// guard bans addresses without looking at the networks:
				// unbanning such an address says the network still holds it.
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "banned4", "{ 203.0.113.9 }")
				res, err := l.store.Unban(ctx, prefixes(t, "203.0.113.9"))
				if err != nil || res.Removed != 1 || len(res.Warnings) != 1 || res.Warnings[0] != "203.0.113.9 is still listed inside 203.0.113.0/24 (list banned)" {
					t.Errorf("unban of an address also inside a banned network: %+v %v", res, err)
				}
				if l.inNFTSet(t, "banned", "203.0.113.9") || !l.inKernel(t, b, "banned", "203.0.113.9") {
					t.Error("the unban took the address out of banned4 and left the network")
				}
			}
		})
	}
}

// TestBanEndsEstablishedUDPFlow: a UDP SIP flow that conntrack knows as
// established stops at the ban, and its conntrack entry is gone.
func TestBanEndsEstablishedUDPFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			l := newLab(t, b, true)
			ctx := context.Background()
			// The phone is allowed to SIP without the knock.
			if _, err := l.store.Allow(ctx, items(t, 0, "", "198.51.100.21")); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 16)
			var srv *net.UDPConn
			if err := netns.Do(l.srv, func() (err error) {
				srv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 5060})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			go func() {
				buf := make([]byte, 2048)
				for {
					n, from, err := srv.ReadFromUDP(buf)
					if err != nil {
						return
					}
					got <- string(buf[:n])
					srv.WriteToUDP([]byte("SIP/2.0 200 OK\r\n\r\n"), from)
				}
			}()
			var cli *net.UDPConn
			if err := netns.Do(l.inet, func() (err error) {
				cli, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.51.100.21"), Port: 5099}, &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 5060})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			send := func(msg string, wait time.Duration) bool {
				cli.Write([]byte(msg))
				select {
				case p := <-got:
					return p == msg
				case <-time.After(wait):
					return false
				}
			}
			for i := 0; i < 3; i++ {
				if !send(fmt.Sprintf("OPTIONS %d", i), 5*time.Second) {
					t.Fatalf("the allowed phone's UDP packet %d did not arrive", i)
				}
			}
			flows := nstest.Run(t, l.srv, "conntrack", "-L", "-p", "udp", "-s", "198.51.100.21")
			if !strings.Contains(flows, "dport=5060") {
				t.Fatalf("no conntrack flow for the phone:\n%s", flows)
			}
			res, err := l.store.Ban(ctx, items(t, 0, "", "198.51.100.0/24"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Flows < 1 {
				t.Errorf("Ban reported %d flows deleted, want at least 1", res.Flows)
			}
			if send("OPTIONS after the ban", 700*time.Millisecond) {
				t.Error("the established UDP flow still reaches the server after the ban")
			}
			// Nothing is left for the flow to match once the ban is lifted
			// from the raw table either: the flow entry is gone.
			out, _ := netns.Run(ctx, l.srv, nil, "conntrack", "-L", "-p", "udp", "-s", "198.51.100.21", "--dport", "5060", "--state", "ASSURED")
			if strings.Contains(out, "sport=5099") {
				t.Errorf("the phone's assured flow survived the ban:\n%s", out)
			}
		})
	}
}

// TestDeleteFlowsNetwork checks the conntrack deletion alone, for a network
// and an IPv6 address, against flows made with conntrack -I.
func TestDeleteFlowsNetwork(t *testing.T) {
	nstest.RequireRoot(t, "conntrack")
	ns := nstest.New(t, "ct")
	for _, f := range [][]string{
		{"-s", "198.51.100.7", "-d", "192.0.2.10"},
		{"-s", "198.51.100.200", "-d", "192.0.2.10"},
		{"-s", "203.0.113.1", "-d", "192.0.2.10"},
		{"-s", "2001:db8:20::11", "-d", "2001:db8:10::10"},
	} {
		argv := append([]string{"conntrack", "-I"}, f...)
		argv = append(argv, "-p", "udp", "--sport", "5099", "--dport", "5060", "-t", "100", "-u", "ASSURED")
		nstest.Run(t, ns, argv...)
	}
	be, err := sw.Open(sw.IPTables, sw.Host{NS: ns})
	if err != nil {
		t.Fatal(err)
	}
	n, err := be.ForgetFlows(context.Background(), prefixes(t, "198.51.100.0/24", "2001:db8:20::11"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("deleted %d flows, want 3", n)
	}
	out := nstest.Run(t, ns, "conntrack", "-L")
	if strings.Contains(out, "198.51.100.") || strings.Contains(out, "2001:db8:20::11") {
		t.Errorf("flows of banned sources left:\n%s", out)
	}
	if !strings.Contains(out, "203.0.113.1") {
		t.Errorf("the flow of a source not banned was deleted:\n%s", out)
	}
}

// TestSaveRestoreRoundTrip saves the lists, empties the kernel (a fresh
// namespace, as after a reboot), restores with the clock moved on, and
// checks entries, comments and remaining timeouts.
func TestSaveRestoreRoundTrip(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			l := newLab(t, b, false)
			ctx := context.Background()
			if _, err := l.store.Ban(ctx, items(t, time.Hour, "scan", "203.0.113.11", "2001:db8:20::11")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Ban(ctx, items(t, 5*time.Minute, "", "203.0.113.12")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Ban(ctx, items(t, 0, "", "198.51.100.0/24")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Allow(ctx, items(t, 0, "phone", "198.51.100.21")); err != nil {
				t.Fatal(err)
			}
			if _, err := l.store.Add(ctx, compile.SetAdmitted, items(t, 0, "", "2001:db8:20::21")); err != nil {
				t.Fatal(err)
			}
			file := lists.DefaultFile(l.stateDir)
			sr, err := l.store.Save(ctx, file)
			if err != nil {
				t.Fatal(err)
			}
			if sr.Entries != 6 {
				t.Errorf("saved %d entries, want 6", sr.Entries)
			}

			// "Reboot": a new kernel namespace with the ruleset and empty lists.
			l2 := newLab(t, b, false)
			l2.store.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
			rr, err := l2.store.Restore(ctx, file)
			if err != nil {
				t.Fatal(err)
			}
			if rr.FellBack != "" || rr.Restored != 5 || rr.Expired != 1 {
				t.Errorf("restore: %+v, want 5 restored and the 5-minute ban expired", rr)
			}
			es, err := l2.store.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := find(es, "banned", "203.0.113.11")
			if !ok || e.Remaining < 48*time.Minute || e.Remaining > 50*time.Minute {
				t.Errorf("203.0.113.11 restored as %+v, want about 50m left", e)
			}
			if b == "nftables" && e.Comment != "scan" {
				t.Errorf("comment %q not restored", e.Comment)
			}
			for _, want := range [][2]string{{"banned", "2001:db8:20::11"}, {"banned", "198.51.100.0/24"}, {"allowed", "198.51.100.21"}, {"admitted", "2001:db8:20::21"}} {
				if _, ok := find(es, want[0], want[1]); !ok {
					t.Errorf("%s not restored to %s", want[1], want[0])
				}
			}
			if _, ok := find(es, "banned", "203.0.113.12"); ok {
				t.Error("an expired ban came back")
			}
			if !l2.inKernel(t, b, "banned", "198.51.100.99") {
				t.Error("the restored /24 does not match an address inside it")
			}
		})
	}
}

// TestRestoreCorruptFallsBack: a truncated current file restores the
// previous generation and says so; both corrupt is an error that changes
// nothing; a file from a newer sipwall is refused.
func TestRestoreCorruptFallsBack(t *testing.T) {
	l := newLab(t, "nftables", false)
	ctx := context.Background()
	file := filepath.Join(l.stateDir, "lists.json")
	if _, err := l.store.Ban(ctx, items(t, 0, "", "203.0.113.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.store.Save(ctx, file); err != nil {
		t.Fatal(err)
	}
	if _, err := l.store.Ban(ctx, items(t, 0, "", "203.0.113.2")); err != nil {
		t.Fatal(err)
	}
	sr, err := l.store.Save(ctx, file)
	if err != nil || !sr.Rotated {
		t.Fatalf("second save: %+v %v, want the first kept as lists.json.1", sr, err)
	}
	data, _ := os.ReadFile(file)
	os.WriteFile(file, data[:len(data)/2], 0o600) // truncated by a crash

	l2 := newLab(t, "nftables", false)
	rr, err := l2.store.Restore(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if rr.FellBack == "" || rr.From != file+".1" || !strings.Contains(rr.FellBack, "corrupt or truncated") {
		t.Errorf("restore from a truncated file: %+v, want a fall back to .1 that says why", rr)
	}
	es, _ := l2.store.List(ctx)
	if _, ok := find(es, "banned", "203.0.113.1"); !ok || len(es) != 1 {
		t.Errorf("restored %v, want the previous generation (203.0.113.1 only)", es)
	}

	// Both generations corrupt: an error, and the kernel unchanged.
	prev, _ := os.ReadFile(file + ".1")
	prev[len(prev)-3] ^= 0x20
	os.WriteFile(file+".1", prev, 0o600)
	l3 := newLab(t, "nftables", false)
	if _, err := l3.store.Ban(ctx, items(t, 0, "", "192.0.2.99")); err != nil {
		t.Fatal(err)
	}
	before, _ := l3.store.List(ctx)
	if _, err := l3.store.Restore(ctx, file); err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("restore with both generations corrupt: %v, want an error saying nothing changed", err)
	}
	after, _ := l3.store.List(ctx)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the lists changed: %v → %v", before, after)
	}

	// A file from a newer sipwall: refused, even with a good previous one.
	os.WriteFile(file, []byte(strings.Replace(string(data), "sipwall-lists 1 ", "sipwall-lists 2 ", 1)), 0o600)
	os.WriteFile(file+".1", data, 0o600)
	if _, err := l3.store.Restore(ctx, file); err == nil || !strings.Contains(err.Error(), "newer sipwall") {
		t.Errorf("restore of a newer file: %v", err)
	}
}

// TestIPv6Off: an IPv6 address under a ruleset without IPv6 sets is a clear
// error before anything changes.
func TestIPv6Off(t *testing.T) {
	sets := []sw.Set{{Name: "sipwall-banned4", List: "banned", IRName: "banned", Family: ir.IPv4, Networks: true}}
	fake := sw.NewFakeStore(sets)
	s := &lists.Store{Sets: sets, Kernel: fake}
	_, err := s.Ban(context.Background(), items(t, 0, "", "203.0.113.1", "2001:db8::1"))
	if err == nil || !strings.Contains(err.Error(), "no ipv6 set for the banned list") || !errors.Is(err, sw.ErrNoSet) {
		t.Errorf("ban of IPv6 without IPv6 sets: %v", err)
	}
	if got := fake.String(); got != "" {
		t.Errorf("the lists changed:\n%s", got)
	}
}

// TestStateWithoutSets: a state file written before the generation recorded
// its sets still works: the lists read the shapes from the kernel, and the
// next apply records them.
func TestStateWithoutSets(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			l := newLab(t, b, false)
			ctx := context.Background()
			st, err := apply.LoadState(l.stateDir)
			if err != nil {
				t.Fatal(err)
			}
			recorded := st.Current.Sets
			st.Current.Sets = nil
			if err := st.Save(l.stateDir); err != nil {
				t.Fatal(err)
			}
			s, err := lists.Open(ctx, l.stateDir, sw.Host{NS: l.srv})
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Sets) != len(recorded) {
				t.Errorf("%d sets read from the kernel, %d recorded", len(s.Sets), len(recorded))
			}
			if _, err := s.Ban(ctx, items(t, time.Hour, "old state", "203.0.113.40", "198.51.100.0/24")); err != nil {
				t.Fatal(err)
			}
			if !l.inKernel(t, b, "banned", "203.0.113.40") || !l.inKernel(t, b, "banned", "198.51.100.77") {
				t.Error("the bans did not land")
			}
			m := &apply.Manager{Host: sw.Host{NS: l.srv}, StateDir: l.stateDir}
			gen := generation(t, b)
			gen.Sets = nil // as from an older sipwall's caller
			if _, err := m.Apply(ctx, gen, apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			if !l.inKernel(t, b, "banned", "203.0.113.40") || !l.inKernel(t, b, "banned", "198.51.100.77") {
				t.Error("the re-apply over a state without sets lost the bans")
			}
			if st, _ := apply.LoadState(l.stateDir); st == nil || len(st.Current.Sets) != len(recorded) {
				t.Error("the apply did not record the sets")
			}
		})
	}
}
