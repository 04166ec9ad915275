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
	"github.com/sipwall/sipwall/internal/guard/status"
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
}

// planGuard decides, before anything changes, whether the ruleset can be
// applied as far as guard is concerned: guard runs (for this state
// directory), or its unit can be started, or --without-guard was given.
func planGuard(ctx context.Context, p *policy.Policy, name backend.Name, stateDir, policyHash string, without bool) guardPlan {
	if !needsGuard(p, name) {
		return guardPlan{}
	}
	s, running, why := status.Check(stateDir, time.Now())
	if running {
		if s.Backend == string(name) && s.PolicyHash == policyHash {
			return guardPlan{}
		}
		if guardUnit.Installed(ctx) {
			return guardPlan{restart: true}
		}
		return guardPlan{note: fmt.Sprintf("sipwall guard (pid %d) runs with backend %s and policy %s: restart it so that it follows this apply", s.PID, s.Backend, shortHash(s.PolicyHash))}
	}
	if without {
		return guardPlan{note: "--without-guard: " + why + "; until `sipwall guard` runs, no phone is admitted by its knock (only trusted and allowed sources reach SIP)"}
	}
	if guardUnit.Installed(ctx) {
		return guardPlan{restart: true}
	}
	return guardPlan{refusal: fmt.Sprintf("with nftables the %s knock is checked by `sipwall guard`, and %s: applied now, no phone would be admitted and SIP would be closed to all but trusted and allowed sources. "+
		"Install its unit (install -m 644 dist/systemd/%s /etc/systemd/system/ && systemctl enable %s; apply then starts it), "+
		"use --backend iptables (the knock in the kernel), or give --without-guard and start `sipwall guard -c FILE` right after. Nothing changed.",
		p.SIP.Mode, why, guardUnitName, guardUnitName)}
}

// startGuard restarts guard's unit after an apply and waits until it says
// it runs with the applied backend and policy.
func startGuard(ctx context.Context, w io.Writer, name backend.Name, stateDir, policyHash string, wait time.Duration) error {
	before := time.Now()
	if err := guardUnit.Restart(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		s, running, why := status.Check(stateDir, time.Now())
		if running && s.Backend == string(name) && s.PolicyHash == policyHash && !s.Started.Before(before.Add(-time.Second)) {
			fmt.Fprintf(w, "sipwall guard runs (pid %d, %s)\n", s.PID, guardUnitName)
			return nil
		}
		if time.Now().After(deadline) {
			if why == "" {
				why = fmt.Sprintf("it runs with backend %s and policy %s", s.Backend, shortHash(s.PolicyHash))
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

// autoAvoidsGuard changes auto's choice of nftables to iptables when the
// policy's SIP admission would need a guard that neither runs nor can be
// started, and iptables is there: auto never picks a backend that would
// leave SIP closed. A backend already applied is kept (apply then
// refuses or starts guard).
func autoAvoidsGuard(ctx context.Context, p *policy.Policy, name backend.Name, why string, st *apply.State, stateDir string) (backend.Name, string) {
	if !needsGuard(p, name) || (st != nil && st.Current != nil) {
		return name, why
	}
	if _, running, _ := status.Check(stateDir, time.Now()); running || guardUnit.Installed(ctx) {
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

func shortHash(h string) string { return h[:min(12, len(h))] }

// guardHealthJSON is guard's health for `status --json`.
func guardHealthJSON(stateDir string) map[string]any {
	s, running, why := status.Check(stateDir, time.Now())
	out := map[string]any{"running": running}
	if why != "" {
		out["why"] = why
	}
	if s != nil {
		out["pid"], out["backend"], out["policy_hash"], out["mode"] = s.PID, s.Backend, s.PolicyHash, s.Mode
		out["inspector"], out["started"], out["updated"] = s.Inspect, s.Started, s.Updated
		if !s.LastEvent.IsZero() {
			out["last_event"], out["last_event_what"] = s.LastEvent, s.LastEventWhat
		}
		out["problems"] = append([]string{}, s.Problems...)
	}
	return out
}

// guardHealthText is guard's health for `status`: running or not, the
// backend and policy it enforces against the applied ones, its last event
// and its inputs' problems.
func guardHealthText(stateDir string, applied backend.Name, policyHash string) string {
	s, running, why := status.Check(stateDir, time.Now())
	if !running {
		line := "guard:    not running (" + why + ")"
		if applied == backend.NFTables {
			line += "\n          with nftables the hostname knock and the scanner signatures need it: start sipwall-guard.service"
		}
		return line
	}
	var b strings.Builder
	fmt.Fprintf(&b, "guard:    running, pid %d since %s, backend %s, policy sha256 %s", s.PID, s.Started.Format(time.RFC3339), s.Backend, shortHash(s.PolicyHash))
	if s.Backend != string(applied) {
		fmt.Fprintf(&b, "\n          guard runs with %s but %s is applied: restart it", s.Backend, applied)
	} else if s.PolicyHash != policyHash {
		b.WriteString("\n          guard runs with another policy than the one applied: restart it")
	}
	if s.LastEvent.IsZero() {
		b.WriteString("\n          no event yet")
	} else {
		fmt.Fprintf(&b, "\n          last event %s: %s", s.LastEvent.Format(time.RFC3339), s.LastEventWhat)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "\n          problem: %s", p)
	}
	return b.String()
}
