package cli

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/policy"
)

type jsonReason struct {
	List         string     `json:"list"`
	Entry        string     `json:"entry"`
	Since        *time.Time `json:"since,omitempty"`
	SinceDerived bool       `json:"since_derived,omitempty"`
	Until        *time.Time `json:"until,omitempty"`
	ExpiresIn    int64      `json:"expires_in,omitempty"`
	Comment      string     `json:"comment,omitempty"`
	Who          string     `json:"who"`
	Rule         string     `json:"rule,omitempty"`
	Verdict      string     `json:"verdict"`
	Lift         string     `json:"lift,omitempty"`
	LiftNote     string     `json:"lift_note,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func runWhy(e *env) int {
	fs := newFlags(e, "why", "[-c FILE] [--json] ADDR|CIDR")
	stateDir := stateDirFlag(fs)
	policyFile := fs.String("c", "", "the policy `file` whose trusted networks to check (default: the applied one)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "sipwall why: give one address or network")
		return exitUsage
	}
	p, err := policy.ParsePrefix(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall why: %v\n", err)
		return exitUsage
	}
	s, ok := openStore(e, "why", *stateDir)
	if !ok {
		return exitFailure
	}
	reasons, err := s.Why(e.ctx, p)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall why: %v\n", err)
		return exitFailure
	}
	trusted := policyTrust(*stateDir, *policyFile, p)
	addr := lists.FormatPrefix(p)
	if *asJSON {
		out := make([]jsonReason, 0, len(reasons))
		for _, r := range reasons {
			j := jsonReason{List: r.List, Entry: r.Addr(), Since: timePtr(r.Since), SinceDerived: r.SinceDerived,
				Until: timePtr(r.Until), Comment: r.Comment, Who: r.Who, Rule: r.Rule, Verdict: r.Verdict, Lift: r.Lift, LiftNote: r.LiftNote}
			if r.Remaining > 0 {
				j.ExpiresIn = int64(r.Remaining / time.Second)
			}
			out = append(out, j)
		}
		printJSON(e.stdout, map[string]any{"addr": addr, "listed": len(out) > 0, "entries": out, "policy": trusted})
	} else {
		now := time.Now()
		if len(reasons) == 0 {
			fmt.Fprintf(e.stdout, "%s is in no list\n", addr)
		} else {
			fmt.Fprintf(e.stdout, "%s is listed in %d %s:\n", addr, len(reasons), plural(len(reasons), "entry", "entries"))
		}
		for _, r := range reasons {
			fmt.Fprintf(e.stdout, "\n%s: %s\n", r.List, r.Addr())
			since := "unknown (not recorded)"
			if !r.Since.IsZero() {
				since = fmt.Sprintf("%s (%s ago)", r.Since.UTC().Format(time.RFC3339), ago(now.Sub(r.Since)))
				if r.SinceDerived {
					since += ", from the list's default timeout"
				}
			}
			until := "until removed"
			if !r.Until.IsZero() {
				until = fmt.Sprintf("%s (%s left)", r.Until.UTC().Format(time.RFC3339), ago(r.Remaining))
			}
			fmt.Fprintf(e.stdout, "  since  %s\n  until  %s\n  by     %s\n", since, until, r.Who)
			if r.Rule != "" {
				fmt.Fprintf(e.stdout, "  rule   %s: %s\n", r.Rule, r.Verdict)
			} else {
				fmt.Fprintf(e.stdout, "  rule   the list %s\n", r.Verdict)
			}
			if r.Lift != "" {
				fmt.Fprintf(e.stdout, "  lift   %s\n", r.Lift)
			}
			if r.LiftNote != "" {
				fmt.Fprintf(e.stdout, "         %s\n", r.LiftNote)
			}
		}
		fmt.Fprintf(e.stdout, "\npolicy: %s\n", trusted["says"])
	}
	if len(reasons) == 0 {
		return exitFailure
	}
	return exitOK
}

// ago writes a duration to the second.
func ago(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	return policy.Duration{Duration: d.Truncate(time.Second)}.String()
}

// policyTrust says whether the policy (file, or the applied generation's)
// trusts p: which trusted networks hold it.
func policyTrust(stateDir, file string, p netip.Prefix) map[string]any {
	out := map[string]any{}
	if file == "" {
		if st, err := apply.LoadState(stateDir); err == nil && st.Current != nil {
			file = st.Current.PolicyFile
		}
	}
	nets, err := trustedNets(file)
	if err != nil {
		out["says"] = fmt.Sprintf("trust unknown: %v", err)
		out["error"] = err.Error()
		return out
	}
	var all, sip []string
	for _, n := range nets {
		if lists.Overlaps(n.Prefix, p) {
			if n.all {
				all = append(all, lists.FormatPrefix(n.Prefix))
			} else {
				sip = append(sip, lists.FormatPrefix(n.Prefix))
			}
		}
	}
	out["file"] = file
	out["trusted_all"] = all
	out["trusted_sip"] = sip
	switch {
	case len(all) > 0:
		out["says"] = fmt.Sprintf("trusted for every port by %s (trusted.all: %s); only a ban by hand drops it", file, strings.Join(all, ", "))
	case len(sip) > 0:
		out["says"] = fmt.Sprintf("trusted for SIP and RTP by %s (trusted.sip: %s); only a ban by hand drops it", file, strings.Join(sip, ", "))
	default:
		out["says"] = fmt.Sprintf("not trusted by %s", file)
	}
	return out
}

type trustedNet struct {
	netip.Prefix
	all bool
}

// trustedNets are the trusted.all and trusted.sip networks of the policy
// file (host names are resolved by apply and guard into the allowed list).
func trustedNets(file string) ([]trustedNet, error) {
	if file == "" {
		return nil, fmt.Errorf("no policy applied")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	pol, err := policy.LoadFile(file)
	if err != nil {
		return nil, err
	}
	var out []trustedNet
	for _, n := range pol.Trusted.All {
		out = append(out, trustedNet{n.Prefix, true})
	}
	for _, n := range pol.Trusted.SIP {
		out = append(out, trustedNet{n.Prefix, false})
	}
	return out, nil
}
