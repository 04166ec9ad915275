package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/guard"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// inNS runs the sipwall command line inside namespace ns.
func inNS(t *testing.T, ns string, args ...string) (int, string, string) {
	t.Helper()
	var code int
	var out, errs string
	if err := netns.Do(ns, func() error {
		code, out, errs = run(t, args...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return code, out, errs
}

func sipwallTable(t *testing.T, ns string) bool {
	return strings.Contains(nstest.Run(t, ns, "nft", "list", "tables"), "table inet sipwall")
}

// TestApplyNFTablesNeedsGuard: with nftables the hostname knock is guard's
// job, so apply refuses (nothing changed) when guard neither runs nor can
// be started, goes on when guard runs, and `auto` picks iptables on a
// clean host rather than a backend that would close SIP; status shows
// guard's health.
func TestApplyNFTablesNeedsGuard(t *testing.T) {
	nstest.RequireRoot(t, "nft", "iptables-restore", "ipset")
	t.Setenv("SSH_CONNECTION", "")
	saved := guardUnit
	guardUnit = noUnit{}
	t.Cleanup(func() { guardUnit = saved })

	ns := nstest.New(t, "guardgate")
	dir := t.TempDir()
	t.Setenv("SIPWALL_STATE_DIR", dir)
	code, _, errs := inNS(t, ns, "apply", "-c", lab, "--backend", "nftables", "--confirm", "0")
	if code != exitFailure || !strings.Contains(errs, "sipwall guard") || !strings.Contains(errs, "has never run") || !strings.Contains(errs, "Nothing changed") {
		t.Errorf("apply without guard: exit %d: %s", code, errs)
	}
	if sipwallTable(t, ns) {
		t.Error("a refused apply loaded the ruleset")
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		t.Error("a refused apply wrote state")
	}

	// auto on a clean host: iptables, and it says why.
	code, out, errs := inNS(t, ns, "apply", "-c", lab, "--confirm", "0")
	if code != exitOK || !strings.Contains(out, "with iptables") || !strings.Contains(out, "neither runs nor is installed") {
		t.Errorf("apply auto without guard: exit %d: %s%s", code, out, errs)
	}
	if code, _, errs := inNS(t, ns, "remove", "--yes"); code != exitOK {
		t.Fatalf("remove: %s", errs)
	}

	// A running guard (this process stands for it: alive, status running).
	if err := guard.WriteStatus(dir, guard.Status{PID: os.Getpid(), Running: true, At: time.Now(), Backend: "nftables", Logs: []string{"/var/log/asterisk/security"}}); err != nil {
		t.Fatal(err)
	}
	code, out, errs = inNS(t, ns, "apply", "-c", lab, "--backend", "nftables", "--confirm", "0")
	if code != exitOK || !sipwallTable(t, ns) {
		t.Fatalf("apply with guard running: exit %d: %s%s", code, out, errs)
	}
	_, out, _ = inNS(t, ns, "status")
	if !strings.Contains(out, "guard:    running since") || strings.Contains(out, "NOT RUNNING") {
		t.Errorf("status does not show guard running:\n%s", out)
	}
	_, out, _ = inNS(t, ns, "status", "--json")
	var js struct {
		Guard struct {
			Running bool   `json:"running"`
			Backend string `json:"backend"`
		} `json:"guard"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || !js.Guard.Running || js.Guard.Backend != "nftables" {
		t.Errorf("status --json: %v %+v\n%s", err, js, out)
	}
	// Guard gone (its process exited without a word): status says so.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := guard.WriteStatus(dir, guard.Status{PID: cmd.Process.Pid, Running: true, At: time.Now(), Backend: "nftables"}); err != nil {
		t.Fatal(err)
	}
	_, out, _ = inNS(t, ns, "status")
	if !strings.Contains(out, "guard:    NOT RUNNING") || !strings.Contains(out, "need it") {
		t.Errorf("status does not say guard is missing:\n%s", out)
	}
	// --without-guard applies anyway and says what that means.
	code, _, errs = inNS(t, ns, "apply", "-c", lab, "--backend", "nftables", "--confirm", "0", "--without-guard")
	if code != exitOK || !strings.Contains(errs, "no phone is admitted") {
		t.Errorf("apply --without-guard: exit %d: %s", code, errs)
	}
}

// noUnit is a host without systemd (like this test machine).
type noUnit struct{}

func (noUnit) Installed(context.Context) bool { return false }
func (noUnit) Restart(context.Context) error  { return nil }

// execUnit stands in for systemd: Restart starts the real `sipwall guard`
// in the namespace, as the unit's ExecStart would (start is false: a unit
// that fails to start).
type execUnit struct {
	ns, bin    string
	dir        string
	start      bool
	restarted  *bool
	guardProcs *[]*exec.Cmd
	policy     string // the policy guard runs with (default the lab's)
}

func (u execUnit) Installed(context.Context) bool { return true }

func (u execUnit) Restart(context.Context) error {
	*u.restarted = true
	// As systemd's restart: the guard that runs stops first.
	for _, c := range *u.guardProcs {
		if c.ProcessState == nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
			c.Wait()
		}
	}
	if !u.start {
		return nil
	}
	policy, _ := filepath.Abs(lab)
	if u.policy != "" {
		policy = u.policy
	}
	cmd := exec.Command("ip", "netns", "exec", u.ns, u.bin, "guard", "-c", policy, "--state-dir", u.dir, "--metrics", "off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	*u.guardProcs = append(*u.guardProcs, cmd)
	return nil
}

// TestApplyStartsGuardUnit: where guard's unit is installed, apply loads the
// ruleset, starts the unit and waits until guard says it runs with the
// new backend and policy; a unit that does not come up rolls the apply back.
func TestApplyStartsGuardUnit(t *testing.T) {
	nstest.RequireRoot(t, "nft", "iptables-restore", "ipset")
	t.Setenv("SSH_CONNECTION", "")
	bin := sipwallBinary(t)
	saved, savedWait := guardUnit, guardStartWait
	t.Cleanup(func() { guardUnit, guardStartWait = saved, savedWait })
	guardStartWait = 3 * time.Second

	ns := nstest.New(t, "guardunit")
	dir := t.TempDir()
	t.Setenv("SIPWALL_STATE_DIR", dir)
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range procs {
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
			c.Wait()
		}
	})

	restarted := false
	guardUnit = execUnit{ns: ns, bin: bin, dir: dir, start: false, restarted: &restarted, guardProcs: &procs}
	code, _, errs := inNS(t, ns, "apply", "-c", lab, "--backend", "nftables", "--confirm", "0")
	if code != exitFailure || !restarted || !strings.Contains(errs, "did not report running") || !strings.Contains(errs, "previous ruleset is back") {
		t.Errorf("a unit that does not start: exit %d, restarted %v: %s", code, restarted, errs)
	}
	if sipwallTable(t, ns) {
		t.Error("the ruleset stayed although guard did not start")
	}

	restarted = false
	guardUnit = execUnit{ns: ns, bin: bin, dir: dir, start: true, restarted: &restarted, guardProcs: &procs}
	code, out, errs := inNS(t, ns, "apply", "-c", lab, "--backend", "nftables", "--confirm", "0")
	if code != exitOK || !restarted || !strings.Contains(out, "sipwall guard runs (pid") || !sipwallTable(t, ns) {
		t.Fatalf("apply with the unit: exit %d, restarted %v: %s%s", code, restarted, out, errs)
	}
	if st, ok := guardStatus(dir); !ok || !st.Running || st.Backend != "nftables" {
		t.Errorf("guard's status after apply: %+v %v", st, ok)
	}

	// A ruleset that does not need guard (the knock in the kernel) still
	// restarts the guard that runs, so that it follows the new policy and
	// backend; the switch carries the lists and leaves no nftables table.
	if code, _, errs := inNS(t, ns, "ban", "203.0.113.77"); code != exitOK {
		t.Fatalf("ban: %s", errs)
	}
	restarted = false
	text, _ := os.ReadFile(lab)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	logf := filepath.Join(t.TempDir(), "security.log")
	os.WriteFile(logf, nil, 0o644)
	os.WriteFile(pol, append(text, []byte("\nguard:\n  logs: ["+logf+"]\n")...), 0o644)
	guardUnit = execUnit{ns: ns, bin: bin, dir: dir, start: true, restarted: &restarted, guardProcs: &procs, policy: pol}
	code, out, errs = inNS(t, ns, "apply", "-c", pol, "--backend", "iptables", "--confirm", "0")
	if code != exitOK || !restarted || !strings.Contains(out, "sipwall guard runs (pid") || sipwallTable(t, ns) {
		t.Fatalf("apply with iptables while guard runs: exit %d, restarted %v: %s%s", code, restarted, out, errs)
	}
	if st, ok := guardStatus(dir); !ok || !st.Running || st.Backend != "iptables" {
		t.Errorf("guard's status after the switch: %+v %v", st, ok)
	}
	if sets := nstest.Run(t, ns, "ipset", "list", "sipwall-banned4"); !strings.Contains(sets, "203.0.113.77") {
		t.Errorf("the ban did not follow the switch:\n%s", sets)
	}
}
