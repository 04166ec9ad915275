package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/policy"
)

// guardUnitName is the systemd unit that runs sipwall guard (dist/systemd).
const guardUnitName = "sipwall-guard.service"

// unitManager starts sipwall guard's unit.
type unitManager interface {
	// Installed reports whether systemd runs this host and knows the unit.
	Installed(ctx context.Context) bool
	// Restart (re)starts the unit.
	Restart(ctx context.Context) error
}

// guardStartWait is how long apply waits for a (re)started guard.
var guardStartWait = 15 * time.Second

// guardUnit is systemd, through systemctl.
var guardUnit unitManager = systemctl{}

type systemctl struct{}

func (systemctl) Installed(ctx context.Context) bool {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false
	}
	return exec.CommandContext(ctx, "systemctl", "cat", guardUnitName).Run() == nil
}

func (systemctl) Restart(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "systemctl", "restart", guardUnitName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl restart %s: %v: %s", guardUnitName, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// needsGuard reports whether a ruleset's SIP admission depends on sipwall
// guard: with nftables the hostname and user-agent knocks are guard's job.
func needsGuard(p *policy.Policy, name backend.Name) bool {
	return name == backend.NFTables && (p.SIP.Mode == policy.ModeHostname || p.SIP.Mode == policy.ModeUserAgent)
}

// guardPlan is what apply does about guard.
type guardPlan struct {
	// restart: (re)start the unit after the apply and wait for it.
	restart bool
	// refusal, when not "", is why apply must not go on (nothing changed).
	refusal string
	// note is said after the apply.
	note string
	// optional: the ruleset does not need guard; a restart that fails is
	// a warning, not a rollback.
	optional bool
}

// guardRunning reports whether sipwall guard runs for state directory
// stateDir (its status file says so and its process is alive), and why not.
func guardRunning(stateDir string) (backend.Name, int, bool, string) {
	st, ok := guardStatus(stateDir)
	switch {
	case !ok:
		return "", 0, false, "sipwall guard has never run with state directory " + stateDir
	case !st.Running:
		return backend.Name(st.Backend), st.PID, false, "sipwall guard stopped at " + st.At.Format(time.RFC3339)
	}
	return backend.Name(st.Backend), st.PID, true, ""
}

// planGuard decides, before anything changes, whether the ruleset can be
// applied as far as guard is concerned: guard runs (for this state
// directory), or its unit can be started, or --without-guard was given.
func planGuard(ctx context.Context, p *policy.Policy, name backend.Name, stateDir string, without bool) guardPlan {
	runsWith, pid, running, why := guardRunning(stateDir)
	if !needsGuard(p, name) {
		// A guard that runs (for its log bans) follows the new policy
		// and backend too.
		switch {
		case !running:
			return guardPlan{}
		case guardUnit.Installed(ctx):
			return guardPlan{restart: true, optional: true}
		}
		return guardPlan{note: fmt.Sprintf("sipwall guard (pid %d) keeps the policy and backend it started with: restart it so that it follows this apply", pid)}
	}
	switch {
	case guardUnit.Installed(ctx):
		// Restarted after the apply: guard follows the new ruleset
		// and policy.
		return guardPlan{restart: true}
	case running && runsWith == name:
		return guardPlan{note: fmt.Sprintf("sipwall guard (pid %d) keeps running: restart it if the policy's guard or sip settings changed", pid)}
	case running:
		return guardPlan{note: fmt.Sprintf("sipwall guard (pid %d) runs with backend %s: restart it so that it follows this apply", pid, runsWith)}
	case without:
		return guardPlan{note: "--without-guard: " + why + "; until `sipwall guard` runs, no phone is admitted by its knock (only trusted and allowed sources reach SIP)"}
	}
	return guardPlan{refusal: fmt.Sprintf("with nftables the %s knock is checked by `sipwall guard`, and %s: applied now, no phone would be admitted and SIP would be closed to all but trusted and allowed sources. "+
		"Install its unit (install -m 644 dist/systemd/%s /etc/systemd/system/ && systemctl enable %s; apply then starts it), "+
		"use --backend iptables (the knock in the kernel), or give --without-guard and start `sipwall guard -c FILE` right after. Nothing changed.",
		p.SIP.Mode, why, guardUnitName, guardUnitName)}
}

// startGuard restarts guard's unit after an apply and waits until guard
// says it runs, started after the apply, with the applied backend.
func startGuard(ctx context.Context, w io.Writer, name backend.Name, stateDir string, wait time.Duration) error {
	before := time.Now().Add(-time.Second)
	if err := guardUnit.Restart(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		st, ok := guardStatus(stateDir)
		if ok && st.Running && backend.Name(st.Backend) == name && !st.At.Before(before) {
			fmt.Fprintf(w, "sipwall guard runs (pid %d, %s)\n", st.PID, guardUnitName)
			return nil
		}
		if time.Now().After(deadline) {
			_, _, _, why := guardRunning(stateDir)
			if why == "" {
				why = fmt.Sprintf("the guard that runs started before this apply or with backend %s", st.Backend)
			}
			return fmt.Errorf("%s did not report running within %s (%s); see journalctl -u %s", guardUnitName, wait, why, guardUnitName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// guardMissing is status's warning when the applied ruleset needs guard
// (nftables) and guard does not run.
func guardMissing(stateDir string, applied backend.Name) string {
	if applied != backend.NFTables {
		return ""
	}
	runsWith, _, running, why := guardRunning(stateDir)
	switch {
	case !running:
		return "guard:    NOT RUNNING (" + why + "): with nftables the hostname knock and the scanner signatures need it; start " + guardUnitName
	case runsWith != applied:
		return fmt.Sprintf("guard:    runs with backend %s but %s is applied: restart it", runsWith, applied)
	}
	return ""
}

// autoAvoidsGuard changes auto's choice of nftables to iptables when the
// policy's SIP admission would need a guard that neither runs nor can be
// started, and iptables is there: auto never picks a backend that would
// leave SIP closed. A backend already applied is kept (apply then
// refuses or starts guard).
func autoAvoidsGuard(ctx context.Context, p *policy.Policy, name backend.Name, why string, st *apply.State, stateDir string) (backend.Name, string) {
	if !needsGuard(p, name) || (st != nil && st.Current != nil) {
		return name, why
	}
	if _, _, running, _ := guardRunning(stateDir); running || guardUnit.Installed(ctx) {
		return name, why
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		return name, why
	}
	if _, err := exec.LookPath("ipset"); err != nil {
		return name, why
	}
	return backend.IPTables, why + "; but nftables would need `sipwall guard` for the " + p.SIP.Mode + " knock, which neither runs nor is installed, so iptables (the knock in the kernel)"
}
