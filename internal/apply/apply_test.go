package apply_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	_ "github.com/sipwall/sipwall/internal/backend/builtin"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

const lab = "../../examples/lab.yaml"

var backends = []backend.Name{backend.IPTables, backend.NFTables}

// generation compiles a policy text (or the lab policy when text is "").
func generation(t *testing.T, name backend.Name, text string) *apply.Generation {
	t.Helper()
	var p *policy.Policy
	var err error
	if text == "" {
		p, err = policy.LoadFile(lab)
	} else {
		p, err = policy.Parse("test.yaml", []byte(text))
	}
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: backend.Name(name)})
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(rs, name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := apply.NewGeneration(name, rs, files)
	if err != nil {
		t.Fatal(err)
	}
	g.PolicyFile = lab
	return g
}

func newManager(t *testing.T, ns string) *apply.Manager {
	return &apply.Manager{Host: backend.Host{NS: ns}, StateDir: t.TempDir()}
}

var (
	saveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)
)

// kernelState is everything the kernel holds that apply could touch.
func kernelState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-n"}, {"nft", "list", "ruleset"}} {
		out := nstest.Run(t, ns, argv...)
		b.WriteString(saveNoise.ReplaceAllString(out, ""))
	}
	return b.String()
}

// othersRules loads fail2ban-, Docker- and administrator-style rules.
func othersRules(t *testing.T, ns string) {
	for _, cmd := range [][]string{
		{"iptables", "-N", "f2b-asterisk"},
		{"iptables", "-A", "f2b-asterisk", "-s", "192.0.2.99", "-j", "REJECT"},
		{"iptables", "-I", "INPUT", "-p", "udp", "--dport", "5060", "-j", "f2b-asterisk"},
		{"iptables", "-N", "DOCKER"},
		{"iptables", "-A", "FORWARD", "-j", "DOCKER"},
		{"ip6tables", "-A", "INPUT", "-s", "2001:db8:99::1", "-j", "DROP"},
		{"nft", "add", "table", "inet", "admin"},
		{"nft", "add", "chain", "inet", "admin", "in", "{ type filter hook input priority 10; }"},
		{"nft", "add", "rule", "inet", "admin", "in", "tcp", "dport", "8080", "accept"},
	} {
		nstest.Run(t, ns, cmd...)
	}
}

func TestApplyTouchesOnlySipwallsPart(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	ctx := context.Background()
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := nstest.New(t, "apply")
			othersRules(t, ns)
			before := kernelState(t, ns)
			m := newManager(t, ns)
			for i := 0; i < 2; i++ { // a re-apply over itself is clean too
				if _, err := m.Apply(ctx, generation(t, b, ""), apply.ApplyOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			after := nstest.Run(t, ns, "iptables-save")
			for _, want := range []string{"-A INPUT -p udp -m udp --dport 5060 -j f2b-asterisk", "-A f2b-asterisk -s 192.0.2.99/32 -j REJECT", "-A FORWARD -j DOCKER"} {
				if !strings.Contains(after, want) {
					t.Errorf("lost %q", want)
				}
			}
			if b == "iptables" {
				if n := strings.Count(after, "-A INPUT -j sipwall-input"); n != 1 {
					t.Errorf("%d jumps to sipwall-input after two applies, want 1", n)
				}
				if !strings.Contains(after, ":INPUT DROP") {
					t.Error("INPUT policy not set to DROP")
				}
			} else if !strings.Contains(nstest.Run(t, ns, "nft", "list", "tables"), "table inet sipwall") {
				t.Error("table inet sipwall missing")
			}
			if st, err := m.Status(ctx); err != nil || st.Drift {
				t.Errorf("status right after apply: drift %v (%v): %s", st.Drift, err, st.DriftDetail)
			}
			// Back to the first apply; a second rollback has nothing to go
			// back to: it changes nothing and says so.
			if _, err := m.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			applied := kernelState(t, ns)
			if _, err := m.Rollback(ctx); !errors.Is(err, apply.ErrNothingToRollBack) || !strings.Contains(err.Error(), "sipwall remove") {
				t.Fatalf("second rollback: %v, want ErrNothingToRollBack naming sipwall remove", err)
			}
			if got := kernelState(t, ns); got != applied {
				t.Errorf("a refused rollback changed the kernel:\n--- before\n%s\n--- after\n%s", applied, got)
			}
			if b == backend.IPTables && !strings.Contains(nstest.Run(t, ns, "iptables-save"), ":INPUT DROP") {
				t.Error("a refused rollback opened INPUT")
			}
			// Removing sipwall restores exactly what was there, sets
			// included.
			if _, err := m.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			got := kernelState(t, ns)
			if got != before {
				t.Errorf("after remove the kernel differs from before:\n--- before\n%s\n--- after\n%s", before, got)
			}
		})
	}
}

func TestFailedApplyChangesNothing(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	ctx := context.Background()
	// Rules the kernel refuses (the set does not exist), in the middle of a file.
	badV4 := "-A sipwall-input -m comment --comment refused -j SET --add-set sipwall-nosuch4 src\n"
	badV6 := "-A sipwall-input -m comment --comment refused -j SET --add-set sipwall-nosuch6 src\n"
	badNFT := "\t\tip saddr @nosuch4 counter drop\n"
	inject := func(text, marker, bad string) string {
		i := strings.Index(text, marker)
		if i < 0 {
			t.Fatalf("marker %q not found", marker)
		}
		j := i + strings.Index(text[i:], "\n") + 1
		return text[:j] + bad + text[j:]
	}
	for _, tc := range []struct {
		name              string
		backend           backend.Name
		file, marker, bad string
	}{
		{"iptables IPv4", "iptables", "rules.v4", "-A sipwall-input -i lo", badV4},
		{"iptables IPv6 after IPv4 went in", "iptables", "rules.v6", "-A sipwall-input -i lo", badV6},
		{"nftables", "nftables", "sipwall.nft", "comment \"loopback\"", badNFT},
	} {
		for _, first := range []bool{true, false} {
			name := tc.name + " over a previous ruleset"
			if first {
				name = tc.name + " on a clean host"
			}
			t.Run(name, func(t *testing.T) {
				ns := nstest.New(t, "fail")
				othersRules(t, ns)
				m := newManager(t, ns)
				if !first {
					if _, err := m.Apply(ctx, generation(t, tc.backend, ""), apply.ApplyOptions{}); err != nil {
						t.Fatal(err)
					}
					nstest.Run(t, ns, "sh", "-c", "ipset add sipwall-scanners4 203.0.113.11 2>/dev/null || nft add element inet sipwall scanners4 '{ 203.0.113.11 }'")
				}
				before := kernelState(t, ns)
				stateBefore, _ := os.ReadFile(filepath.Join(m.StateDir, "state.json"))
				g := generation(t, tc.backend, "ssh: {ports: [22]}\nsip:\n  hostnames: [other.example-secret.net]\n")
				g.Files[tc.file] = inject(g.Files[tc.file], tc.marker, tc.bad)
				_, err := m.Apply(ctx, g, apply.ApplyOptions{})
				if err == nil {
					t.Fatal("the kernel accepted a rule it must refuse")
				}
				if !strings.Contains(err.Error(), "nothing changed") {
					t.Errorf("error does not say nothing changed: %v", err)
				}
				if after := kernelState(t, ns); after != before {
					t.Errorf("a failed apply changed the kernel:\n--- before\n%s\n--- after\n%s", before, after)
				}
				stateAfter, _ := os.ReadFile(filepath.Join(m.StateDir, "state.json"))
				if string(stateAfter) != string(stateBefore) {
					t.Error("a failed apply changed the state file")
				}
			})
		}
	}
}

// elementTimeout returns the remaining timeout of addr in a list, -1 when absent.
func elementTimeout(t *testing.T, ns string, name backend.Name, list, addr string) int {
	t.Helper()
	if name == backend.IPTables {
		out := nstest.Run(t, ns, "ipset", "list", "sipwall-"+list+"4")
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(addr) + `(?: timeout (\d+))?`).FindStringSubmatch(out)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	be, err := backend.Open(name, backend.Host{NS: ns})
	if err != nil {
		t.Fatal(err)
	}
	sets, err := be.ReadSets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es, err := be.Store(sets).Read(context.Background(), list)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Addr() == addr {
			return int(e.Remaining / time.Second)
		}
	}
	return -1
}

func TestListsSurviveReapplyAndRollback(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset", "nft")
	ctx := context.Background()
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := nstest.New(t, "lists")
			m := newManager(t, ns)
			if _, err := m.Apply(ctx, generation(t, b, ""), apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			if b == "iptables" {
				nstest.Run(t, ns, "ipset", "add", "sipwall-scanners4", "203.0.113.11", "timeout", "3600")
				nstest.Run(t, ns, "ipset", "add", "sipwall-trapped4", "203.0.113.16")
				nstest.Run(t, ns, "ipset", "add", "sipwall-admitted4", "198.51.100.21")
			} else {
				nstest.Run(t, ns, "nft", "add", "element", "inet", "sipwall", "scanners4", "{ 203.0.113.11 timeout 1h }")
				nstest.Run(t, ns, "nft", "add", "element", "inet", "sipwall", "trapped4", "{ 203.0.113.16 }")
				nstest.Run(t, ns, "nft", "add", "element", "inet", "sipwall", "admitted4", "{ 198.51.100.21 }")
			}
			check := func(when string) {
				t.Helper()
				if n := elementTimeout(t, ns, b, "scanners", "203.0.113.11"); n <= 0 || n > 3600 {
					t.Errorf("%s: scanner's remaining timeout = %d", when, n)
				}
				if n := elementTimeout(t, ns, b, "trapped", "203.0.113.16"); n <= 0 || n > 600 {
					t.Errorf("%s: trapped source's remaining timeout = %d", when, n)
				}
				if n := elementTimeout(t, ns, b, "admitted", "198.51.100.21"); n < 0 {
					t.Errorf("%s: the admitted phone was lost", when)
				}
			}
			time.Sleep(1100 * time.Millisecond)
			// A new policy with another trap ban time and other limits.
			changed := "ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\ntraps:\n  ban_for: 20m\nspoofing:\n  exempt: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32]\n"
			if _, err := m.Apply(ctx, generation(t, b, changed), apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			check("after a re-apply")
			if _, err := m.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			check("after a rollback")
		})
	}
}

func TestLockKeepsTwoAppliesApart(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset")
	ctx := context.Background()
	ns := nstest.New(t, "lock")
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &apply.Manager{Host: backend.Host{NS: ns}, StateDir: dir, LockWait: time.Minute}
			_, err := m.Apply(ctx, generation(t, "iptables", ""), apply.ApplyOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(nstest.Run(t, ns, "iptables-save"), "-A INPUT -j sipwall-input"); n != 1 {
		t.Errorf("%d jumps after concurrent applies", n)
	}
	if _, err := apply.LoadState(dir); err != nil {
		t.Errorf("state after concurrent applies: %v", err)
	}
	// While the lock is held, another apply gives up with a clear error.
	unlock, err := apply.Lock(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	m := &apply.Manager{Host: backend.Host{NS: ns}, StateDir: dir, LockWait: 200 * time.Millisecond}
	if _, err := m.Apply(ctx, generation(t, "iptables", ""), apply.ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "another sipwall") {
		t.Errorf("apply under a held lock: %v", err)
	}
}

func TestDetect(t *testing.T) {
	nstest.RequireRoot(t, "iptables", "nft")
	ctx := context.Background()
	clean := nstest.New(t, "detect")
	if b, why := apply.Detect(ctx, backend.Host{NS: clean}, nil); b != "nftables" {
		t.Errorf("clean host: %s (%s)", b, why)
	}
	ipt := nstest.New(t, "detect")
	nstest.Run(t, ipt, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	if b, why := apply.Detect(ctx, backend.Host{NS: ipt}, nil); b != "iptables" || !strings.Contains(why, "iptables") {
		t.Errorf("iptables host: %s (%s)", b, why)
	}
	native := nstest.New(t, "detect")
	nstest.Run(t, native, "nft", "add", "table", "inet", "filter")
	if b, why := apply.Detect(ctx, backend.Host{NS: native}, nil); b != "nftables" || !strings.Contains(why, "inet filter") {
		t.Errorf("nftables host: %s (%s)", b, why)
	}
	st := &apply.State{Current: &apply.Generation{Backend: "iptables"}}
	if b, _ := apply.Detect(ctx, backend.Host{NS: native}, st); b != "iptables" {
		t.Errorf("an applied backend must be kept, got %s", b)
	}
}

// buildSipwall builds the sipwall binary for the commit-confirm tests.
func buildSipwall(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sipwall")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sipwall").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCommitConfirm(t *testing.T) {
	nstest.RequireRoot(t, "nft", "iptables-restore")
	bin := buildSipwall(t)
	labAbs, _ := filepath.Abs(lab)
	applied := func(ns string) bool {
		out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").Output()
		return strings.Contains(string(out), "table inet sipwall")
	}
	start := func(t *testing.T, ns, dir string, confirm string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", ns, bin, "apply", "-c", labAbs, "--backend", "nftables", "--confirm", confirm, "--state-dir", dir, "--without-guard")
		cmd.Env = append(os.Environ(), "SSH_CONNECTION=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "sipwall confirm") {
				return cmd
			}
		}
		cmd.Wait()
		t.Fatal("apply did not announce the confirmation deadline")
		return nil
	}
	t.Run("not confirmed: rolls back", func(t *testing.T) {
		ns, dir := nstest.New(t, "cc"), t.TempDir()
		cmd := start(t, ns, dir, "2s")
		cmd.Wait()
		if !applied(ns) {
			t.Fatal("not applied")
		}
		waitFor(t, 10*time.Second, func() bool { return !applied(ns) && settled(dir) }, "the ruleset did not roll back at the deadline")
	})
	t.Run("confirmed: stays", func(t *testing.T) {
		ns, dir := nstest.New(t, "cc"), t.TempDir()
		cmd := start(t, ns, dir, "2s")
		cmd.Wait()
		out, err := exec.Command("ip", "netns", "exec", ns, bin, "confirm", "--state-dir", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("confirm: %v %s", err, out)
		}
		time.Sleep(3500 * time.Millisecond)
		if !applied(ns) {
			t.Error("a confirmed ruleset was rolled back")
		}
	})
	t.Run("killed with SIGKILL right after applying: rolls back", func(t *testing.T) {
		ns, dir := nstest.New(t, "cc"), t.TempDir()
		cmd := start(t, ns, dir, "2s")
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if !applied(ns) {
			t.Fatal("not applied")
		}
		waitFor(t, 10*time.Second, func() bool { return !applied(ns) && settled(dir) }, "the ruleset did not roll back after the applying process was killed")
	})
}

// settled reports whether the watchdog has written its final state (nothing
// applied, nothing pending): after that it only releases its lock and exits.
func settled(dir string) bool {
	st, err := apply.LoadState(dir)
	return err == nil && st.Pending == nil && st.Current == nil
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Error(msg)
}

// TestLegacyStateDerivesSets: a state file from before generations recorded
// their sets gets them from the IR on load, when the policy file is
// unchanged since the apply, and none (read from the kernel later) when
// it changed.
func TestLegacyStateDerivesSets(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			dir := t.TempDir()
			policyFile := filepath.Join(dir, "sipwall.yaml")
			data, err := os.ReadFile(lab)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(policyFile, data, 0o600)
			want := generation(t, b, "").Sets
			hash, _ := apply.HashFile(policyFile)
			st := &apply.State{Current: &apply.Generation{Backend: b, PolicyFile: policyFile, PolicyHash: hash}}
			if err := st.Save(dir); err != nil {
				t.Fatal(err)
			}
			got, err := apply.LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Current.Sets) != fmt.Sprint(want) || len(want) == 0 {
				t.Errorf("derived sets:\n%v\nwant:\n%v", got.Current.Sets, want)
			}
			os.WriteFile(policyFile, append(data, []byte("\n# edited\n")...), 0o600)
			if got, _ := apply.LoadState(dir); got.Current.Sets != nil {
				t.Errorf("sets derived from a policy edited since the apply: %v", got.Current.Sets)
			}
		})
	}
}
