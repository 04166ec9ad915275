package compile_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// load loads rendered files into ns with the real tools.
func load(t testing.TB, ns string, files map[string]string) {
	t.Helper()
	steps := []struct{ file, tool string }{
		{"ipsets", "ipset -exist restore"}, {"rules.v4", "iptables-restore"}, {"rules.v6", "ip6tables-restore"}, {"sipwall.nft", "nft -f -"},
	}
	for _, s := range steps {
		if files[s.file] == "" {
			continue
		}
		if _, err := netns.Run(context.Background(), ns, strings.NewReader(files[s.file]), strings.Fields(s.tool)...); err != nil {
			t.Fatalf("%s refused %s: %v", s.tool, s.file, err)
		}
	}
}

var (
	ruleLine = regexp.MustCompile(`(?m)^-A `)
	nftRule  = regexp.MustCompile(`(?m)^\t\t.*\bcounter\b`)
)

// TestGoldenRulesetsLoadIntoTheKernel loads every golden ruleset into a fresh
// namespace with iptables-restore, ip6tables-restore, ipset and nft, reads it
// back, and checks that the kernel holds every rule and set we wrote.
func TestGoldenRulesetsLoadIntoTheKernel(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	for _, c := range goldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			_, files := renderCase(t, c)
			ns := nstest.New(t, "load")
			load(t, ns, files)
			// Loading twice must work too (a re-apply over itself).
			load(t, ns, files)
			if c.Backend == backend.IPTables {
				for _, f := range []struct{ file, save string }{{"rules.v4", "iptables-save"}, {"rules.v6", "ip6tables-save"}} {
					if files[f.file] == "" {
						continue
					}
					saved := nstest.Run(t, ns, f.save)
					want := len(ruleLine.FindAllString(files[f.file], -1))
					if got := len(ruleLine.FindAllString(saved, -1)); got != want {
						t.Errorf("%s: kernel holds %d rules, we wrote %d:\n%s", f.save, got, want, saved)
					}
					for _, chain := range regexp.MustCompile(`(?m)^:(\S+)`).FindAllStringSubmatch(files[f.file], -1) {
						if !strings.Contains(saved, ":"+chain[1]+" ") {
							t.Errorf("%s: chain %s missing", f.save, chain[1])
						}
					}
				}
				sets := strings.Fields(nstest.Run(t, ns, "ipset", "list", "-n"))
				if want := strings.Count(files["ipsets"], "create "); len(sets) != want {
					t.Errorf("ipset holds %d sets %v, we created %d", len(sets), sets, want)
				}
				return
			}
			listed := nstest.Run(t, ns, "nft", "list", "table", "inet", "sipwall")
			want := len(nftRule.FindAllString(files["sipwall.nft"], -1))
			if got := len(nftRule.FindAllString(listed, -1)); got != want {
				t.Errorf("nft holds %d rules, we wrote %d:\n%s", got, want, listed)
			}
			if got, want := strings.Count(listed, "\tset "), strings.Count(files["sipwall.nft"], "\tset "); got != want {
				t.Errorf("nft holds %d sets, we wrote %d", got, want)
			}
		})
	}
}

// TestOthersRulesSurvive loads fail2ban-, Docker- and administrator-style
// rules, then sipwall's ruleset, and checks that theirs are intact.
func TestOthersRulesSurvive(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset", "nft")
	ns := nstest.New(t, "others")
	for _, cmd := range [][]string{
		{"iptables", "-N", "f2b-asterisk"},
		{"iptables", "-A", "f2b-asterisk", "-s", "192.0.2.99", "-j", "REJECT"},
		{"iptables", "-I", "INPUT", "-p", "udp", "--dport", "5060", "-j", "f2b-asterisk"},
		{"iptables", "-N", "DOCKER"},
		{"iptables", "-A", "FORWARD", "-j", "DOCKER"},
		{"nft", "add", "table", "inet", "admin"},
		{"nft", "add", "chain", "inet", "admin", "in", "{ type filter hook input priority 10; }"},
		{"nft", "add", "rule", "inet", "admin", "in", "tcp", "dport", "8080", "accept"},
	} {
		nstest.Run(t, ns, cmd...)
	}
	before := nstest.Run(t, ns, "iptables-save")
	adminBefore := nstest.Run(t, ns, "nft", "list", "table", "inet", "admin")
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		_, files := renderCase(t, goldenCase{Policy: "../../examples/lab.yaml", Backend: b})
		if b == backend.IPTables {
			// A running system takes the rules without flushing others'.
			nstest.Run(t, ns, "sh", "-c", "ipset -exist restore <<'EOF'\n"+files["ipsets"]+"EOF\niptables-restore --noflush <<'EOF'\n"+files["rules.v4"]+"EOF")
		} else {
			load(t, ns, files)
		}
	}
	after := nstest.Run(t, ns, "iptables-save")
	for _, line := range strings.Split(before, "\n") {
		if strings.Contains(line, "f2b") || strings.Contains(line, "DOCKER") {
			if !strings.Contains(after, line) {
				t.Errorf("lost %q", line)
			}
		}
	}
	if adminAfter := nstest.Run(t, ns, "nft", "list", "table", "inet", "admin"); adminAfter != adminBefore {
		t.Errorf("table inet admin changed:\n%s\n---\n%s", adminBefore, adminAfter)
	}
}
