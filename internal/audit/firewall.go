package audit

import (
	"context"
	"fmt"
	"strings"
)

// maxDriftShown bounds the drift lines quoted in a finding.
const maxDriftShown = 10

func (a *auditor) checkFirewall(ctx context.Context) {
	if a.cfg.Firewall == nil {
		a.add(Finding{
			Severity: Info, Check: "firewall.not_checked",
			Found: "the applied ruleset was not checked",
			Why:   "whether sipwall's ruleset is loaded, matches the policy and has its lists restored is read from the kernel",
			Fix:   "run the audit on the host with a policy (-c POLICY)",
		})
		return
	}
	st, err := a.cfg.Firewall.FirewallStatus(ctx)
	if err != nil {
		a.add(Finding{
			Severity: Medium, Check: "firewall.unknown",
			Found: fmt.Sprintf("cannot read the applied ruleset: %v", err),
			Why:   "a missing or drifted ruleset would go unnoticed",
			Fix:   "run the audit as root on the host, with the firewall tools installed",
		})
		return
	}
	if !st.Applied {
		a.add(Finding{
			Severity: High, Check: "firewall.not_applied",
			Found: "sipwall's ruleset is not loaded in the kernel",
			Why:   "nothing filters traffic to the PBX: every port in this report is open to the Internet",
			Fix:   "run `sipwall apply -c POLICY` and enable the sipwall service so the ruleset is restored at boot",
		})
		return
	}
	if len(st.Drift) > 0 {
		shown := st.Drift
		more := ""
		if len(shown) > maxDriftShown {
			more = fmt.Sprintf("\n... and %d more", len(shown)-maxDriftShown)
			shown = shown[:maxDriftShown]
		}
		a.add(Finding{
			Severity: High, Check: "firewall.drift",
			Found: fmt.Sprintf("the ruleset in the kernel differs from the policy in %d places:\n%s%s", len(st.Drift), strings.Join(shown, "\n"), more),
			Why:   "someone or something changed the rules by hand, or the policy changed and was not applied: what is enforced is not what was reviewed",
			Fix:   "review the difference, then run `sipwall apply -c POLICY` (or update the policy to keep the change)",
		})
	}
	for _, l := range st.Lists {
		if l.Entries == 0 && l.Saved > 0 {
			a.add(Finding{
				Severity: Medium, Check: "firewall.list_empty",
				Found: fmt.Sprintf("list %s is empty in the kernel but its saved copy holds %d entries", l.Name, l.Saved),
				Why:   "the lists were not restored after a reboot or reload: banned scanners are back in, admitted phones must be identified again",
				Fix:   "enable the sipwall restore service before the network comes up, or run `sipwall lists restore` now",
			})
		}
	}
}
