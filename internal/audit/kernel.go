package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The article's limits for xt_recent (its defaults are 100 and 20).
const (
	wantRecentListTot    = 2000
	wantRecentPktListTot = 20 // the largest --hitcount the article's rules use
	articleRecentOptions = "options xt_recent ip_pkt_list_tot=100 ip_list_tot=2000"
)

// conntrackFullRatio is the fill of the conntrack table that is reported.
const conntrackFullRatio = 0.8

// Sizing of the conntrack table for an expected load: a baseline for
// signalling and scanners plus, per concurrent call, the RTP and RTCP flows
// of both legs with headroom.
const (
	conntrackBaseline = 16384
	conntrackPerCall  = 16
)

func (a *auditor) checkKernel(ctx context.Context) {
	a.checkRecent()
	a.checkConntrack()
	a.checkIPv6()
}

// readInt reads a file holding one integer; ok is false when it is missing
// (and a finding is recorded when it is unreadable or malformed).
func (a *auditor) readInt(path string) (int, bool) {
	data, ok := a.readConfig(path)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		a.add(Finding{
			Severity: Low, Check: "kernel.syntax", File: path,
			Found: fmt.Sprintf("%q is not a number", strings.TrimSpace(string(data))),
			Why:   "the kernel setting in this file could not be checked",
			Fix:   "check that the file is a copy of the kernel's (copy it with cat, not cp)",
		})
		return 0, false
	}
	return n, true
}

func (a *auditor) checkRecent() {
	exp := a.cfg.Exposure
	if exp == nil || exp.Profile != ProfileArticle {
		return
	}
	dir := a.sysPath("module", "xt_recent", "parameters")
	listTot, ok1 := a.readInt(dir + "/ip_list_tot")
	pktTot, ok2 := a.readInt(dir + "/ip_pkt_list_tot")
	if !ok1 || !ok2 {
		if _, err := a.files.ReadDir(dir); err == nil {
			return // present but unreadable or malformed: already reported
		}
		a.add(Finding{
			Severity: Info, Check: "kernel.xt_recent_not_loaded", File: dir,
			Found: "the xt_recent module is not loaded, so its limits could not be read",
			Why:   "the article's profile keeps its lists in xt_recent, whose defaults hold only 100 addresses per list",
			Fix:   "create /etc/modprobe.d/xt_recent.conf with `" + articleRecentOptions + "`, then run the audit again after applying the ruleset",
		})
		return
	}
	var low []string
	if listTot < wantRecentListTot {
		low = append(low, fmt.Sprintf("ip_list_tot=%d (each list forgets the oldest address beyond %d)", listTot, listTot))
	}
	if pktTot < wantRecentPktListTot {
		low = append(low, fmt.Sprintf("ip_pkt_list_tot=%d (rules with --hitcount above %d fail to load)", pktTot, pktTot))
	}
	if len(low) == 0 {
		return
	}
	a.add(Finding{
		Severity: Medium, Check: "kernel.xt_recent_limits", File: dir,
		Found: strings.Join(low, "; "),
		Why:   "a scan from more addresses than a list holds pushes banned and admitted addresses out of it: banned scanners return and legitimate phones are dropped",
		Fix:   "create /etc/modprobe.d/xt_recent.conf with `" + articleRecentOptions + "` and reboot (or unload and reload xt_recent with the ruleset removed)",
	})
}

func (a *auditor) checkConntrack() {
	maxPath := a.procPath("sys", "net", "netfilter", "nf_conntrack_max")
	limit, ok := a.readInt(maxPath)
	if !ok {
		return
	}
	if count, ok := a.readInt(a.procPath("sys", "net", "netfilter", "nf_conntrack_count")); ok && limit > 0 &&
		float64(count) >= conntrackFullRatio*float64(limit) {
		a.add(Finding{
			Severity: High, Check: "kernel.conntrack_full", File: maxPath,
			Found: fmt.Sprintf("the conntrack table holds %d of %d entries", count, limit),
			Why:   "when the table is full the kernel drops new connections, calls included, and a SIP flood fills it quickly",
			Fix:   fmt.Sprintf("raise it (`sysctl -w net.netfilter.nf_conntrack_max=%d`, persisted in /etc/sysctl.d/90-sipwall.conf) and look for a flood in `conntrack -L`", 2*limit),
		})
	}
	exp := a.cfg.Exposure
	if exp == nil || exp.ExpectedCalls <= 0 {
		return
	}
	need := conntrackBaseline + conntrackPerCall*exp.ExpectedCalls
	if limit < need {
		a.add(Finding{
			Severity: Medium, Check: "kernel.conntrack_small", File: maxPath,
			Found: fmt.Sprintf("nf_conntrack_max is %d; %d concurrent calls need about %d", limit, exp.ExpectedCalls, need),
			Why:   "each call holds several tracked flows (SIP, RTP and RTCP of both legs); a full table drops new calls",
			Fix:   fmt.Sprintf("set `net.netfilter.nf_conntrack_max = %d` in /etc/sysctl.d/90-sipwall.conf and run `sysctl --system`", need),
		})
	}
}

// globalIPv6 reports whether an interface has a global IPv6 address
// (/proc/net/if_inet6, scope 00).
func (a *auditor) globalIPv6() (string, bool) {
	data, err := a.files.ReadFile(a.procPath("net", "if_inet6"))
	if err != nil {
		return "", false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[3] == "00" {
			return f[5], true
		}
	}
	return "", false
}

func (a *auditor) checkIPv6() {
	exp := a.cfg.Exposure
	if exp == nil || exp.IPv6 || !a.ipv6Enabled() {
		return
	}
	path := a.procPath("sys", "net", "ipv6", "conf", "all", "disable_ipv6")
	f := Finding{
		Check: "kernel.ipv6_unfiltered", File: path,
		Fix: "enable IPv6 in the policy so sipwall writes IPv6 rules too, or disable IPv6: `net.ipv6.conf.all.disable_ipv6 = 1` in /etc/sysctl.d/90-sipwall.conf",
	}
	if ifname, ok := a.globalIPv6(); ok {
		f.Severity = High
		f.Found = fmt.Sprintf("IPv6 is enabled, %s has a global IPv6 address, and the policy has no IPv6 rules", ifname)
		f.Why = "every service is reachable over IPv6 without any of the IPv4 protections (the article: secure IPv6 with ip6tables, or disable it)"
	} else {
		f.Severity = Low
		f.Found = "IPv6 is enabled (link-local addresses only) and the policy has no IPv6 rules"
		f.Why = "hosts on the same link reach every service over IPv6, and a router advertisement or a new address makes it global"
	}
	a.add(f)
}
