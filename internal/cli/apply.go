package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	_ "github.com/sipwall/sipwall/internal/backend/builtin" // the backends sipwall is built with
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

// stateDirFlag adds --state-dir, defaulting to $SIPWALL_STATE_DIR or /var/lib/sipwall.
func stateDirFlag(fs interface {
	String(string, string, string) *string
}) *string {
	def := os.Getenv("SIPWALL_STATE_DIR")
	if def == "" {
		def = apply.DefaultStateDir
	}
	return fs.String("state-dir", def, "sipwall's state `dir`ectory")
}

func manager(dir string) *apply.Manager {
	return &apply.Manager{StateDir: dir}
}

func runApply(e *env) int {
	fs := newFlags(e, "apply", "[-c FILE] [--backend auto|iptables|nftables] [--confirm DURATION] [--diff]")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	backendName := fs.String("backend", "auto", "auto, iptables or nftables")
	confirm := fs.String("confirm", "", "roll back by itself unless `sipwall confirm` runs within this `duration` (default 60s in an SSH session, 0 disables)")
	force := fs.Bool("force", false, "apply even when the policy has lint errors, such as cutting this SSH session")
	withoutGuard := fs.Bool("without-guard", false, "with nftables, apply even though `sipwall guard` (the knock) neither runs nor can be started; start it yourself right after")
	dryRun := fs.Bool("dry-run", false, "say what would change (rules, sets, ports) and change nothing")
	showDiff := fs.Bool("diff", false, "like --dry-run, with the ruleset diff against what is applied")
	asJSON := fs.Bool("json", false, "print JSON")
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall apply: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var wait time.Duration
	if os.Getenv("SSH_CONNECTION") != "" {
		wait = 60 * time.Second
	}
	if *confirm != "" {
		d, err := policy.ParseDuration(*confirm)
		if err != nil || (d != 0 && d < time.Second) || d > 24*time.Hour {
			fmt.Fprintf(e.stderr, "sipwall apply: --confirm: %q is not a duration between 1s and 24h (0 disables)\n", *confirm)
			return exitUsage
		}
		wait = d
	}
	if *backendName != "auto" {
		if _, err := backend.Parse(*backendName); err != nil {
			fmt.Fprintf(e.stderr, "sipwall apply: --backend: %v (or auto)\n", err)
			return exitUsage
		}
	}
	p, ok := loadPolicy(e, *file)
	if !ok {
		return exitUsage
	}
	if !lintGate(e, p, *force, "sipwall apply: refusing to apply (see above; --force overrides). Nothing changed.") {
		return exitFailure
	}
	m := manager(*stateDir)
	st, err := apply.LoadState(*stateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
		return exitFailure
	}
	name, why := backend.Name(*backendName), "chosen with --backend"
	if name == "auto" {
		name, why = apply.Detect(e.ctx, m.Host, st)
		name, why = autoAvoidsGuard(e.ctx, p, name, why, st, *stateDir)
	}
	rs, err := compilePolicy(e.ctx, p, name, "sipwall")
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
		return exitUsage
	}
	files, err := render.Files(rs, name)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
		return exitFailure
	}
	gen, err := apply.NewGeneration(name, rs, files)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
		return exitFailure
	}
	gen.PolicyFile = absPath(*file)
	gen.PolicyHash, _ = apply.HashFile(*file)
	gen.Open = exposure(p)
	changes := diffGenerations(st.Current, gen)
	if *dryRun || *showDiff {
		if *asJSON {
			if !*showDiff {
				changes.Unified = ""
			}
			printJSON(e.stdout, map[string]any{"dry_run": true, "policy": *file, "backend": name, "backend_why": why, "changes": changes, "open": gen.Open})
		} else {
			fmt.Fprintf(e.stdout, "dry run: %s with %s (%s); nothing changes\n", *file, name, why)
			printDiff(e.stdout, changes, *showDiff)
		}
		return exitOK
	}
	plan := planGuard(e.ctx, p, name, *stateDir, *withoutGuard)
	if plan.refusal != "" {
		fmt.Fprintf(e.stderr, "sipwall apply: %s\n", plan.refusal)
		return exitFailure
	}
	res, err := m.Apply(e.ctx, gen, apply.ApplyOptions{Confirm: wait, Watchdog: watchdog(*stateDir)})
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
		return exitFailure
	}
	if plan.restart {
		out := e.stdout
		if *asJSON {
			out = e.stderr // stdout is for the JSON
		}
		if err := startGuard(e.ctx, out, name, *stateDir, guardStartWait); err != nil && plan.optional {
			fmt.Fprintf(e.stderr, "warning: the ruleset is applied, but restarting sipwall guard so that it follows it failed: %v\n", err)
		} else if err != nil {
			fmt.Fprintf(e.stderr, "sipwall apply: %v\n", err)
			if _, rerr := m.RollbackBecause(e.ctx, apply.WhyGuardFailed); rerr != nil {
				fmt.Fprintf(e.stderr, "sipwall apply: rolling back: %v\n", rerr)
			} else {
				fmt.Fprintln(e.stderr, "sipwall apply: the previous ruleset is back: without guard this one would close SIP")
			}
			return exitFailure
		}
	}
	if plan.note != "" {
		fmt.Fprintf(e.stderr, "note: %s\n", plan.note)
	}
	for _, n := range rs.Notes {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	counts := listCounts(e.ctx, gen)
	if *asJSON {
		out := map[string]any{"applied": true, "policy": *file, "backend": name, "backend_why": why,
			"open": gen.Open, "lists": counts, "changes": changes}
		if res.Pending != nil {
			out["pending_until"] = res.Pending.Deadline
		}
		printJSON(e.stdout, out)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "applied %s with %s (%s)\n", *file, name, why)
	if changes.From != "" {
		fmt.Fprintf(e.stdout, "changed: %d rules added, %d removed; %d sets added, %d removed; %d openings added, %d closed (apply --diff shows them before)\n",
			len(changes.RulesAdded), len(changes.RulesRemoved), len(changes.SetsAdded), len(changes.SetsRemoved), len(changes.Opened), len(changes.Closed))
	}
	printSummary(e.stdout, gen, counts)
	if res.Pending != nil {
		fmt.Fprintf(e.stdout, "run `sipwall confirm` before %s (%s from now), or the previous ruleset comes back by itself\n",
			res.Pending.Deadline.Format("15:04:05"), wait)
	}
	return exitOK
}

func absPath(p string) string {
	if a, err := os.Getwd(); err == nil && !strings.HasPrefix(p, "/") {
		return a + "/" + p
	}
	return p
}

// watchdog starts `sipwall rollback --watchdog` in a session of its own, so
// that it survives the applying process (even a SIGKILL) and rolls back at
// the deadline unless confirmed.
func watchdog(stateDir string) func(string, time.Time) (int, error) {
	return func(token string, deadline time.Time) (int, error) {
		self, err := os.Executable()
		if err != nil {
			return 0, err
		}
		if strings.HasSuffix(self, ".test") {
			// A test binary would run its tests instead of the watchdog.
			return 0, fmt.Errorf("commit-confirm needs the sipwall binary, not %s", self)
		}
		devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return 0, err
		}
		defer devnull.Close()
		cmd := exec.Command(self, "rollback", "--state-dir", stateDir, "--watchdog", token, "--deadline", deadline.Format(time.RFC3339Nano))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pid := cmd.Process.Pid
		cmd.Process.Release()
		return pid, nil
	}
}

func runConfirm(e *env) int {
	fs := newFlags(e, "confirm", "")
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if err := manager(*stateDir).Confirm(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "sipwall confirm: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, "confirmed: the ruleset stays")
	return exitOK
}

func runRollback(e *env) int {
	fs := newFlags(e, "rollback", "")
	stateDir := stateDirFlag(fs)
	token := fs.String("watchdog", "", "internal: roll back at --deadline unless the apply with this token was confirmed")
	deadline := fs.String("deadline", "", "internal: the watchdog's deadline (RFC 3339)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	m := manager(*stateDir)
	if *token != "" {
		t, err := time.Parse(time.RFC3339Nano, *deadline)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall rollback: --deadline: %v\n", err)
			return exitUsage
		}
		select {
		case <-time.After(time.Until(t)):
		case <-e.ctx.Done():
			// Interrupted: roll back now rather than never.
		}
		done, err := m.RollbackIfPending(e.ctx, *token)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall rollback: %v\n", err)
			return exitFailure
		}
		if done {
			fmt.Fprintln(e.stdout, "not confirmed in time: previous ruleset restored")
		}
		return exitOK
	}
	prev, err := m.Rollback(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall rollback: %v\n", err)
		return exitFailure
	}
	if prev == nil {
		fmt.Fprintln(e.stdout, "rolled back the unconfirmed first apply: sipwall's ruleset removed and the host's own policies back; the lists are kept")
	} else {
		fmt.Fprintf(e.stdout, "rolled back to the ruleset of %s applied %s\n", prev.PolicyFile, prev.AppliedAt.Format(time.RFC3339))
	}
	return exitOK
}

// describeEvent says in words what a rollback or removal did.
func describeEvent(ev apply.Event) string {
	ref := func(g *apply.GenRef) string {
		if g == nil {
			return "none (sipwall's ruleset removed)"
		}
		return fmt.Sprintf("%s applied %s with %s", g.PolicyFile, g.AppliedAt.UTC().Format(time.RFC3339), g.Backend)
	}
	at := ev.At.UTC().Format(time.RFC3339)
	if ev.Kind == apply.EventRemove {
		return fmt.Sprintf("removed %s (`sipwall remove`): was %s", at, ref(ev.From))
	}
	why := ev.Why
	switch why {
	case apply.WhyUnconfirmed:
		why = "not confirmed before the deadline"
	case apply.WhyByHand:
		why = "by hand, `sipwall rollback`"
	}
	return fmt.Sprintf("rolled back %s (%s): from %s to %s", at, why, ref(ev.From), ref(ev.To))
}

func runStatus(e *env) int {
	fs := newFlags(e, "status", "[--json]")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	s, err := manager(*stateDir).Status(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		type gen struct {
			Backend    backend.Name `json:"backend"`
			PolicyFile string       `json:"policy_file"`
			PolicyHash string       `json:"policy_hash"`
			AppliedAt  time.Time    `json:"applied_at"`
		}
		out := map[string]any{"applied": s.Current != nil, "drift": s.Drift, "policy_changed": s.PolicyChanged}
		if s.Current != nil {
			out["current"] = gen{s.Current.Backend, s.Current.PolicyFile, s.Current.PolicyHash, s.Current.AppliedAt}
			if s.PolicyChanged {
				if changed, known := rulesetChanged(e, s.Current); known {
					out["ruleset_changed"] = changed
				}
			} else {
				out["ruleset_changed"] = false
			}
		}
		if s.Pending != nil {
			out["pending_until"] = s.Pending.Deadline
		}
		if s.Drift {
			out["drift_detail"] = s.DriftDetail
		}
		if g, ok := guardStatus(*stateDir); ok {
			out["guard"] = g
		}
		out["history"] = s.History
		if last := s.Last(); last != nil {
			out["last_change"] = last
			if s.Current == nil && last.Kind == apply.EventRemove {
				out["removed"] = true
			}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else if s.Current == nil {
		switch last := s.Last(); {
		case last == nil:
			fmt.Fprintln(e.stdout, "sipwall's ruleset is not applied")
		case last.Kind == apply.EventRemove:
			fmt.Fprintf(e.stdout, "sipwall is removed: %s\n", describeEvent(*last))
		default:
			fmt.Fprintf(e.stdout, "sipwall's ruleset is not applied: %s\n", describeEvent(*last))
		}
	} else {
		c := s.Current
		fmt.Fprintf(e.stdout, "applied:  %s, %s\npolicy:   %s (sha256 %s)\n", c.Backend, c.AppliedAt.Format(time.RFC3339), c.PolicyFile, c.PolicyHash[:min(12, len(c.PolicyHash))])
		if s.PolicyChanged {
			switch changed, known := rulesetChanged(e, c); {
			case !known:
				fmt.Fprintln(e.stdout, "          the policy file changed since (it does not compile now: sipwall check says why)")
			case changed:
				fmt.Fprintln(e.stdout, "          the policy file changed since, and so does its ruleset: `sipwall apply --diff` shows how")
			default:
				fmt.Fprintln(e.stdout, "          the policy file changed since, its ruleset did not (comments or layout): nothing to apply")
			}
		}
		if s.Pending != nil {
			fmt.Fprintf(e.stdout, "pending:  not confirmed; rolls back at %s unless `sipwall confirm`\n", s.Pending.Deadline.Format(time.RFC3339))
		}
		if s.Drift {
			fmt.Fprintf(e.stdout, "drift:    the kernel's ruleset differs from what sipwall applied:\n%s\n", indent(s.DriftDetail))
		} else {
			fmt.Fprintln(e.stdout, "drift:    none")
		}
		if last := s.Last(); last != nil {
			fmt.Fprintf(e.stdout, "last:     %s\n", describeEvent(*last))
			if n := len(s.History); n > 1 {
				fmt.Fprintf(e.stdout, "          (%d rollbacks and removals remembered: status --json lists them)\n", n)
			}
		}
		if w := guardMissing(*stateDir, c.Backend); w != "" {
			fmt.Fprintln(e.stdout, w)
		}
	}
	if !*asJSON {
		printGuardStatus(e.stdout, *stateDir)
	}
	if s.Drift {
		return exitFailure
	}
	return exitOK
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// rulesetChanged compiles the applied generation's policy file as it is now
// and compares the ruleset with the applied one: an edit of comments or
// layout changes the file but not the ruleset. known is false when the
// file no longer compiles.
func rulesetChanged(e *env, g *apply.Generation) (changed, known bool) {
	p, err := policy.LoadFile(g.PolicyFile)
	if err != nil {
		return false, false
	}
	rs, err := compilePolicy(e.ctx, p, g.Backend, "sipwall")
	if err != nil {
		return false, false
	}
	files, err := render.Files(rs, g.Backend)
	if err != nil {
		return false, false
	}
	if len(files) != len(g.Files) {
		return true, true
	}
	for n, f := range files {
		if g.Files[n] != f {
			return true, true
		}
	}
	return false, true
}
