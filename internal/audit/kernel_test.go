package audit

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKernelXTRecent(t *testing.T) {
	for _, tc := range []struct {
		name          string
		profile       string
		list, pktList string // "" leaves the parameter file out
		want          []string
	}{
		{"article defaults", ProfileArticle, "100", "20", []string{"medium kernel.xt_recent_limits"}},
		{"article tiny packet list", ProfileArticle, "2000", "10", []string{"medium kernel.xt_recent_limits"}},
		{"article raised", ProfileArticle, "2000", "100", nil},
		{"article module not loaded", ProfileArticle, "", "", []string{"info kernel.xt_recent_not_loaded"}},
		{"article malformed", ProfileArticle, "lots", "20", []string{"low kernel.syntax"}},
		{"sipwall profile uses sets", ProfileSipwall, "100", "20", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := t.TempDir()
			files := map[string]string{}
			if tc.list != "" {
				files["module/xt_recent/parameters/ip_list_tot"] = tc.list + "\n"
				files["module/xt_recent/parameters/ip_pkt_list_tot"] = tc.pktList + "\n"
			}
			writeTree(t, sys, files, nil)
			r := runAudit(t, Config{Sys: sys, Exposure: &Exposure{Profile: tc.profile, IPv6: true}})
			var got []string
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Check, "kernel.") {
					got = append(got, f.Severity.String()+" "+f.Check)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	sys := t.TempDir()
	writeTree(t, sys, map[string]string{
		"module/xt_recent/parameters/ip_list_tot":     "100\n",
		"module/xt_recent/parameters/ip_pkt_list_tot": "20\n",
	}, nil)
	r := runAudit(t, Config{Sys: sys, Exposure: &Exposure{Profile: ProfileArticle}})
	f := find(t, r, "kernel.xt_recent_limits", "parameters:0")
	if !strings.Contains(f.Found, "ip_list_tot=100") || strings.Contains(f.Found, "ip_pkt_list_tot") {
		t.Errorf("only ip_list_tot is too low: %q", f.Found)
	}
	if !strings.Contains(f.Fix, "options xt_recent ip_pkt_list_tot=100 ip_list_tot=2000") {
		t.Errorf("the fix should be the article's modprobe line: %q", f.Fix)
	}
}

func TestKernelConntrack(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max, count string
		calls      int
		want       []string
	}{
		{"roomy", "262144", "1200", 1000, nil},
		{"nearly full", "65536", "60000", 0, []string{"high kernel.conntrack_full"}},
		{"too small for the load", "65536", "100", 5000, []string{"medium kernel.conntrack_small"}},
		{"load unknown", "65536", "100", 0, nil},
		{"conntrack not loaded", "", "", 5000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			files := map[string]string{}
			if tc.max != "" {
				files["sys/net/netfilter/nf_conntrack_max"] = tc.max + "\n"
				files["sys/net/netfilter/nf_conntrack_count"] = tc.count + "\n"
			}
			writeTree(t, proc, files, nil)
			r := runAudit(t, Config{Proc: proc, Exposure: &Exposure{IPv6: true, ExpectedCalls: tc.calls}})
			var got []string
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Check, "kernel.") {
					got = append(got, f.Severity.String()+" "+f.Check)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestKernelIPv6(t *testing.T) {
	global := "20010db8000000000000000000000010 02 40 00 80     eth0\n"
	local := "fe800000000000000000000000000001 02 40 20 80     eth0\n"
	for _, tc := range []struct {
		name, disabled, addrs string
		policyV6              bool
		noPolicy              bool
		want                  []string
	}{
		{"global address, no IPv6 rules", "0", global, false, false, []string{"high kernel.ipv6_unfiltered"}},
		{"link-local only", "0", local, false, false, []string{"low kernel.ipv6_unfiltered"}},
		{"policy filters IPv6", "0", global, true, false, nil},
		{"IPv6 disabled", "1", global, false, false, nil},
		{"no policy", "0", global, false, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			writeTree(t, proc, map[string]string{
				"sys/net/ipv6/conf/all/disable_ipv6": tc.disabled + "\n",
				"net/if_inet6":                       tc.addrs,
			}, nil)
			cfg := Config{Proc: proc, Exposure: &Exposure{IPv6: tc.policyV6}}
			if tc.noPolicy {
				cfg.Exposure = nil
			}
			r := runAudit(t, cfg)
			var got []string
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Check, "kernel.") {
					got = append(got, f.Severity.String()+" "+f.Check)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// fakeFirewall reports a fixed state.
type fakeFirewall struct {
	st  FirewallStatus
	err error
}

func (f fakeFirewall) FirewallStatus(context.Context) (FirewallStatus, error) { return f.st, f.err }

func TestFirewallState(t *testing.T) {
	for _, tc := range []struct {
		name string
		fw   FirewallState
		want []string
	}{
		{"not checked", nil, []string{"info firewall.not_checked"}},
		{"healthy", fakeFirewall{st: FirewallStatus{Applied: true, Lists: []ListStatus{{Name: "banned", Entries: 40, Saved: 38}, {Name: "admitted", Entries: 0, Saved: -1}}}}, nil},
		{"not applied", fakeFirewall{st: FirewallStatus{Applied: false}}, []string{"high firewall.not_applied"}},
		{"drift", fakeFirewall{st: FirewallStatus{Applied: true, Drift: []string{"-A INPUT -p tcp --dport 5038 -j ACCEPT (not in policy)"}}}, []string{"high firewall.drift"}},
		{"lists lost at reboot", fakeFirewall{st: FirewallStatus{Applied: true, Lists: []ListStatus{{Name: "banned", Entries: 0, Saved: 512}}}}, []string{"medium firewall.list_empty"}},
		{"cannot tell", fakeFirewall{err: errors.New("iptables-save: permission denied")}, []string{"medium firewall.unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAudit(t, Config{Firewall: tc.fw})
			var got []string
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Check, "firewall.") {
					got = append(got, f.Severity.String()+" "+f.Check)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFirewallDriftIsQuotedAndBounded(t *testing.T) {
	var drift []string
	for i := range 25 {
		drift = append(drift, "rule "+string(rune('a'+i)))
	}
	r := runAudit(t, Config{Firewall: fakeFirewall{st: FirewallStatus{Applied: true, Drift: drift}}})
	f := find(t, r, "firewall.drift", ":0")
	if !strings.Contains(f.Found, "25 places") || !strings.Contains(f.Found, "rule a") || strings.Contains(f.Found, "rule k") ||
		!strings.Contains(f.Found, "and 15 more") {
		t.Errorf("drift finding: %q", f.Found)
	}
}
