package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sipwallBinary builds cmd/sipwall once for the tests that run it as a
// process (in a namespace, under restrictions, two at once).
func sipwallBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sipwall-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sipwall")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/sipwall").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// nsLab is a namespace with the lab ruleset applied by the sipwall binary.
type nsLab struct {
	ns, stateDir, bin string
}

func newNSLab(t *testing.T, backend string) *nsLab {
	t.Helper()
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft", "conntrack")
	l := &nsLab{ns: nstest.New(t, "cli"), stateDir: t.TempDir(), bin: sipwallBinary(t)}
	if code, out := l.sipwall(t, "apply", "-c", lab, "--backend", backend, "--confirm", "0", "--without-guard"); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	return l
}

// sipwall runs the binary in the namespace and returns its exit status and
// combined output.
func (l *nsLab) sipwall(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns, l.bin}, args...)...)
	cmd.Env = append(os.Environ(), "SIPWALL_STATE_DIR="+l.stateDir, "SSH_CONNECTION=")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

var expiresIn = regexp.MustCompile(`expires \S+`)

// kernel is the lists as the kernel holds them, for "nothing changed".
func (l *nsLab) kernel(t *testing.T) string {
	out, _ := netns.Run(context.Background(), l.ns, nil, "nft", "list", "table", "inet", "sipwall")
	ips, _ := netns.Run(context.Background(), l.ns, nil, "ipset", "save")
	return expiresIn.ReplaceAllString(out, "") + regexp.MustCompile(`timeout \d+`).ReplaceAllString(ips, "")
}

// TestListsBadInput: every bad input is a clear error naming what is wrong,
// a non-zero exit status, and no change in the kernel or the state.
func TestListsBadInput(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			l := newNSLab(t, backend)
			if code, out := l.sipwall(t, "ban", "203.0.113.1"); code != 0 {
				t.Fatalf("ban: %d %s", code, out)
			}
			badFile := filepath.Join(t.TempDir(), "bans.txt")
			os.WriteFile(badFile, []byte("203.0.113.7\n# a comment\n\n203.0.113.300\n198.51.100.0/24 # office\n10.0.0.1/8\n"), 0o644)
			newer := filepath.Join(t.TempDir(), "lists.json")
			os.WriteFile(newer, []byte("sipwall-lists 9 sha256:00\n{}\n"), 0o600)
			cases := []struct {
				args []string
				code int
				want string
			}{
				{[]string{"lists", "blocked"}, 2, `"blocked" is not a list`},
				{[]string{"ban", "203.0.113.300"}, 2, `"203.0.113.300" is not an address`},
				{[]string{"ban", "10.0.0.1/8"}, 2, "host bits set: did you mean 10.0.0.0/8"},
				{[]string{"ban", "0.0.0.0/0"}, 2, "every address"},
				{[]string{"ban", "::/0"}, 2, "every address"},
				{[]string{"ban", "--for", "10 minutes", "203.0.113.9"}, 2, "--for"},
				{[]string{"ban", "--for", "500ms", "203.0.113.9"}, 2, "1 s resolution"},
				{[]string{"ban", "--for", "0", "203.0.113.9"}, 2, "leave --for out"},
				{[]string{"ban", "--for", "99999d", "203.0.113.9"}, 2, "longer than the " + backend + " backend allows"},
				{[]string{"ban", "--reason", "a\x01b", "203.0.113.9"}, 2, "control character"},
				{[]string{"ban"}, 2, "no address given"},
				{[]string{"ban", "--from-file", badFile}, 2, badFile + ":4:"},
				{[]string{"ban", "--from-file", "/nonexistent/bans"}, 2, "no such file"},
				{[]string{"unban", "192.0.2.200"}, 1, "in none of the lists"},
				{[]string{"unban", "not-an-address"}, 2, "is not an address"},
				{[]string{"restore", "--file", newer}, 1, "newer sipwall"},
				{[]string{"restore", "--file", filepath.Join(t.TempDir(), "none.json")}, 1, "no saved lists"},
			}
			for _, c := range cases {
				before := l.kernel(t)
				code, out := l.sipwall(t, c.args...)
				if code != c.code || !strings.Contains(strings.ToLower(out), strings.ToLower(c.want)) {
					t.Errorf("sipwall %q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
				}
				if after := l.kernel(t); after != before {
					t.Errorf("sipwall %q changed the kernel:\n%s\n---\n%s", c.args, before, after)
				}
			}
			// The bad file's good lines were not applied either.
			if code, out := l.sipwall(t, "lists", "--json", "banned"); code != 0 || strings.Contains(out, "203.0.113.7") {
				t.Errorf("lines of a refused file were applied: %s", out)
			}
		})
	}
}

func TestListsNeedAnAppliedRuleset(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SIPWALL_STATE_DIR", dir)
	code, _, errs := run(t, "ban", "203.0.113.1")
	if code != 1 || !strings.Contains(errs, "nothing applied: run sipwall apply first") {
		t.Errorf("ban with nothing applied: exit %d: %s", code, errs)
	}
	os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"version": 99}`), 0o600)
	code, _, errs = run(t, "lists")
	if code != 1 || !strings.Contains(errs, "newer sipwall") {
		t.Errorf("lists with a state file from a newer version: exit %d: %s", code, errs)
	}
}

// TestTwoProcessesAtOnce runs two bans of 2,000 addresses each and two
// saves at the same time: every address ends up banned and the saved file
// is whole. A process that finds the lock held waits for it.
func TestTwoProcessesAtOnce(t *testing.T) {
	l := newNSLab(t, "nftables")
	dir := t.TempDir()
	var files []string
	for f := 0; f < 2; f++ {
		var b strings.Builder
		for i := 0; i < 2000; i++ {
			fmt.Fprintf(&b, "10.%d.%d.%d\n", 100+f, i/250, i%250+1)
		}
		p := filepath.Join(dir, fmt.Sprintf("bans%d", f))
		os.WriteFile(p, []byte(b.String()), 0o644)
		files = append(files, p)
	}
	var wg sync.WaitGroup
	results := make([]string, 4)
	codes := make([]int, 4)
	for i, args := range [][]string{{"ban", "--from-file", files[0]}, {"ban", "--from-file", files[1]}, {"save"}, {"save"}} {
		wg.Add(1)
		go func(i int, args []string) {
			defer wg.Done()
			codes[i], results[i] = l.sipwall(t, args...)
		}(i, args)
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != 0 {
			t.Errorf("process %d: exit %d: %s", i, codes[i], results[i])
		}
	}
	if code, out := l.sipwall(t, "save"); code != 0 {
		t.Fatal(out)
	}
	code, out := l.sipwall(t, "lists", "--json", "banned")
	if code != 0 {
		t.Fatal(out)
	}
	if n := strings.Count(out, `"addr"`); n != 4000 {
		t.Errorf("%d addresses banned, want 4000", n)
	}
	ns2 := nstest.New(t, "cli2")
	l2 := &nsLab{ns: ns2, stateDir: l.stateDir, bin: l.bin}
	if code, out := l2.sipwall(t, "restore", "--boot"); code != 0 || !strings.Contains(out, "restored 4000 entries") {
		t.Errorf("restore of the saved file: exit %d: %s", code, out)
	}

	// The lock: while it is held, a ban waits; once released, it lands.
	unlock, err := apply.Lock(l.stateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		c, _ := l.sipwall(t, "ban", "203.0.113.77")
		done <- c
	}()
	select {
	case c := <-done:
		t.Fatalf("ban finished (exit %d) while another sipwall held the lock", c)
	case <-time.After(700 * time.Millisecond):
	}
	if _, err := netns.Run(context.Background(), l.ns, nil, "nft", "get", "element", "inet", "sipwall", "banned4", "{ 203.0.113.77 }"); err == nil {
		t.Error("the ban landed while the lock was held")
	}
	unlock()
	if c := <-done; c != 0 {
		t.Errorf("ban after the lock was released: exit %d", c)
	}
	if _, err := netns.Run(context.Background(), l.ns, nil, "nft", "get", "element", "inet", "sipwall", "banned4", "{ 203.0.113.77 }"); err != nil {
		t.Error("the ban did not land after the lock was released")
	}
}

// restricted runs the sipwall binary in ns the way dist/systemd's units do:
// capability bounding set CAP_NET_ADMIN and CAP_NET_RAW only (iptables'
// set match opens a raw socket to ask ipset its version), no new privileges, every file
// system read-only except the state directory (ProtectSystem=strict with
// StateDirectory=). systemd is not PID 1 in the test environment, so the
// test builds the same restrictions with unshare, mount and setpriv.
func restricted(t *testing.T, ns, stateDir, bin string, args ...string) (int, string) {
	t.Helper()
	script := `set -e
mount --make-rprivate /
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;; esac
done
mount --bind "$STATE" "$STATE"
mount -o remount,bind,rw "$STATE"
exec setpriv --no-new-privs --bounding-set -all,+net_admin,+net_raw --inh-caps -all "$@"`
	argv := append([]string{"netns", "exec", ns, "unshare", "--mount", "sh", "-c", script, "sh", bin}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = append(os.Environ(), "STATE="+stateDir, "SIPWALL_STATE_DIR="+stateDir, "SSH_CONNECTION=")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestUnderServiceRestrictions: apply, ban, save and restore --boot work
// with only CAP_NET_ADMIN and CAP_NET_RAW and a read-only system, as the units run them.
func TestUnderServiceRestrictions(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset", "nft", "conntrack", "setpriv", "unshare")
	bin := sipwallBinary(t)
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			ns := nstest.New(t, "svc")
			state := t.TempDir()
			policyFile, _ := filepath.Abs(lab)

			// The restrictions are real: only CAP_NET_ADMIN and CAP_NET_RAW are left, and
			// nothing outside the state directory can be written.
			code, out := restricted(t, ns, state, "/bin/sh", "-c", "grep CapEff /proc/self/status; touch /var/tmp/sipwall-probe && echo WROTE; true")
			if code != 0 || !strings.Contains(out, "CapEff:\t0000000000003000") || strings.Contains(out, "WROTE") {
				t.Fatalf("the restricted environment is not what the units set up:\n%s", out)
			}
			for _, args := range [][]string{
				{"apply", "-c", policyFile, "--backend", backend, "--confirm", "0", "--without-guard"},
				{"ban", "--for", "1h", "203.0.113.5", "2001:db8:20::5", "198.51.100.0/24"},
				{"save"},
				{"stats"},
			} {
				if code, out := restricted(t, ns, state, bin, args...); code != 0 {
					t.Fatalf("sipwall %v under the unit's restrictions: exit %d:\n%s", args, code, out)
				}
			}
			// Boot: a fresh kernel namespace; restore --boot loads the
			// ruleset and the lists.
			ns2 := nstest.New(t, "svc2")
			code, out = restricted(t, ns2, state, bin, "restore", "--boot")
			if code != 0 || !strings.Contains(out, "restored 3 entries") {
				t.Fatalf("restore --boot under the unit's restrictions: exit %d:\n%s", code, out)
			}
			l := &nsLab{ns: ns2, stateDir: state, bin: bin}
			code, out = l.sipwall(t, "lists", "banned")
			if code != 0 || !strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, "2001:db8:20::5") {
				t.Errorf("after restore --boot: %s", out)
			}
			code, out = l.sipwall(t, "status")
			if code != 0 {
				t.Errorf("status after restore --boot: exit %d (drift?):\n%s", code, out)
			}
		})
	}
}

// TestUnitsAreHardened keeps dist/systemd's units in step with what
// TestUnderServiceRestrictions shows to work.
func TestUnitsAreHardened(t *testing.T) {
	for _, unit := range []string{"sipwall-restore.service", "sipwall-save.service"} {
		b, err := os.ReadFile(filepath.Join("../../dist/systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n",
			"ReadWritePaths=/var/lib/sipwall\n", "Environment=SIPWALL_STATE_DIR=/var/lib/sipwall\n",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", unit, strings.TrimSpace(want))
			}
		}
	}
	b, _ := os.ReadFile("../../dist/systemd/sipwall-restore.service")
	for _, want := range []string{"Before=network-pre.target", "ExecStart=/usr/local/sbin/sipwall restore --boot", "ExecStop=/usr/local/sbin/sipwall save", "DefaultDependencies=no"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("sipwall-restore.service lacks %q", want)
		}
	}
	b, _ = os.ReadFile("../../dist/systemd/sipwall-save.timer")
	if !strings.Contains(string(b), "OnUnitActiveSec=") {
		t.Error("sipwall-save.timer does not repeat")
	}
}
