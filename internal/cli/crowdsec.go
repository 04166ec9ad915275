package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/sipwall/sipwall/internal/crowdsec"
	"github.com/sipwall/sipwall/internal/guard"
	"github.com/sipwall/sipwall/internal/policy"
)

// runCrowdSec is `sipwall crowdsec status`: the LAPI the policy names (is
// it reachable, is the key accepted), and what guard's bouncer, watcher and
// feeds last did.
func runCrowdSec(e *env) int {
	if len(e.args) == 0 || (e.args[0] != "status" && e.args[0] != "-h" && e.args[0] != "--help") {
		fmt.Fprintln(e.stderr, "usage: sipwall crowdsec status [-c FILE] [--state-dir DIR] [--json]")
		return exitUsage
	}
	if e.args[0] == "status" {
		e.args = e.args[1:]
	}
	fs := newFlags(e, "crowdsec status", "[-c FILE] [--state-dir DIR] [--json]")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall crowdsec status: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	p, ok := loadPolicy(e, *file)
	if !ok {
		return exitUsage
	}
	f, err := guard.FleetFromPolicy(p)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall crowdsec status: %v\n", err)
		return exitUsage
	}
	type lapiState struct {
		URL       string `json:"url"`
		Reachable bool   `json:"reachable"`
		Error     string `json:"error,omitempty"`
		Push      bool   `json:"push"`
	}
	out := struct {
		LAPI  *lapiState         `json:"lapi,omitempty"`
		Guard bool               `json:"guard_running"`
		Fleet *guard.FleetStatus `json:"fleet,omitempty"`
		Feeds []string           `json:"feeds_configured,omitempty"`
	}{}
	code := exitOK
	if f != nil && f.CrowdSec != nil {
		ls := &lapiState{URL: f.CrowdSec.URL, Push: f.CrowdSec.MachineID != ""}
		c, err := crowdsec.NewClient(*f.CrowdSec)
		if err == nil {
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			// A lookup, not a pull: a pull would take this bouncer's
			// pending changes from guard.
			_, err = c.Active(ctx, "ip", "192.0.2.0")
			cancel()
		}
		ls.Reachable = err == nil
		if err != nil {
			ls.Error = err.Error()
			code = exitFailure
		}
		out.LAPI = ls
	}
	if f != nil {
		for _, fd := range f.Feeds {
			out.Feeds = append(out.Feeds, fd.Name)
		}
	}
	if st, ok := guardStatus(*stateDir); ok {
		out.Guard = st.Running
		if st.Running {
			out.Fleet = st.Fleet
		}
	}
	if *asJSON {
		printJSON(e.stdout, out)
		return code
	}
	w := e.stdout
	if out.LAPI == nil {
		fmt.Fprintf(w, "crowdsec: not configured in %s (a crowdsec: section with url and key_file)\n", *file)
	} else {
		state := "reachable, bouncer key accepted"
		if !out.LAPI.Reachable {
			state = "NOT usable: " + out.LAPI.Error
		}
		push := "pull only (no machine_id)"
		if out.LAPI.Push {
			push = "pull and push (watcher " + p.CrowdSec.MachineID + ")"
		}
		fmt.Fprintf(w, "LAPI:     %s: %s; %s\n", out.LAPI.URL, state, push)
	}
	if !out.Guard {
		fmt.Fprintln(w, "guard:    not running: nothing is pulled, pushed or fetched (systemctl start sipwall-guard)")
		if out.LAPI != nil || len(out.Feeds) > 0 {
			code = exitFailure
		}
		return code
	}
	fl := out.Fleet
	if fl == nil {
		fmt.Fprintln(w, "guard:    running, without crowdsec or feeds (restart it after adding them)")
		return code
	}
	if b := fl.Bouncer; b != nil {
		last := "never"
		if !b.LastPull.IsZero() {
			last = time.Since(b.LastPull).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "bouncer:  %d addresses and networks enforced (fleet list), last pull %s, %d full resyncs\n", b.Enforced, last, b.Resyncs)
		if b.LastErr != "" {
			fmt.Fprintf(w, "          last error: %s\n", b.LastErr)
			code = exitFailure
		}
	}
	if wt := fl.Watcher; wt != nil {
		fmt.Fprintf(w, "watcher:  %d bans pushed, %d waiting\n", wt.Pushed, wt.Pending)
		if wt.LastErr != "" {
			fmt.Fprintf(w, "          last error: %s\n", wt.LastErr)
			code = exitFailure
		}
	}
	for _, fd := range fl.Feeds {
		upd := "never"
		if !fd.Updated.IsZero() {
			upd = fd.Updated.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "feed %-8s %d entries (list feed-%s), updated %s\n", fd.Name+":", fd.Entries, fd.Name, upd)
		if fd.LastError != "" {
			fmt.Fprintf(w, "          last error (the previous list stays): %s\n", fd.LastError)
			code = exitFailure
		}
	}
	return code
}
