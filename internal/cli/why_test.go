package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// sipwallEnv runs the binary in the namespace with extra environment and
// stdin, and returns its exit status, stdout and stderr.
func (l *nsLab) sipwallEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns, l.bin}, args...)...)
	cmd.Env = append(append(cmd.Environ(), "SIPWALL_STATE_DIR="+l.stateDir, "SSH_CONNECTION="), env...)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errs.String()
}

func (l *nsLab) must(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := l.sipwallEnv(t, nil, args...)
	if code != 0 {
		t.Fatalf("sipwall %q: exit %d:\n%s%s", args, code, out, errs)
	}
	return out + errs
}

// TestWhy: why names every entry holding an address (itself, a network
// around it), since when and until when, who put it there, the applied
// rule and the command that lifts it; exit 1 when listed nowhere. On both
// backends, against the kernel's own sets.
func TestWhy(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			l := newNSLab(t, backend)
			before := time.Now().Add(-time.Second)
			l.must(t, "ban", "--for", "1d", "--reason", "toll fraud", "203.0.113.7")
			l.must(t, "ban", "--for", "1h", "203.0.113.0/24")
			code, out, _ := l.sipwallEnv(t, nil, "why", "203.0.113.7")
			for _, want := range []string{
				"203.0.113.7 is listed in 2 entries",
				"banned: 203.0.113.7", "reason: toll fraud", "lift   sipwall unban 203.0.113.7",
				"banned: 203.0.113.0/24", "lift   sipwall unban 203.0.113.0/24",
				`("banned by hand or by guard") [banned]: drops every packet`,
				"policy: not trusted by",
			} {
				if code != 0 || !strings.Contains(out, want) {
					t.Errorf("why 203.0.113.7: exit %d, lacks %q:\n%s", code, want, out)
				}
			}
			code, out, _ = l.sipwallEnv(t, nil, "why", "--json", "203.0.113.7")
			var j struct {
				Listed  bool
				Entries []struct {
					List, Entry, Who, Rule, Lift string
					Since, Until                 time.Time
					ExpiresIn                    int64 `json:"expires_in"`
				}
			}
			if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || !j.Listed || len(j.Entries) != 2 {
				t.Fatalf("why --json: exit %d, %v:\n%s", code, err, out)
			}
			for _, e := range j.Entries {
				if e.Since.Before(before) || e.Since.After(time.Now()) {
					t.Errorf("%s: since %s, want the time of the ban", e.Entry, e.Since)
				}
				want := time.Hour
				if e.Entry == "203.0.113.7" {
					want = 24 * time.Hour
				}
				if d := e.Until.Sub(e.Since); d < want-2*time.Second || d > want+time.Second {
					t.Errorf("%s: until %s, since %s: not %s apart", e.Entry, e.Until, e.Since, want)
				}
				if e.Rule == "" || e.Lift != "sipwall unban "+e.Entry {
					t.Errorf("%s: rule %q lift %q", e.Entry, e.Rule, e.Lift)
				}
			}
			// A scanner the kernel banned, with guard's signature comment.
			nstest.Run(t, l.ns, "sh", "-c", addScanner(backend, "198.51.100.9", compile.SignatureComment("friendly-scanner")+" @1764570000"))
			code, out, _ = l.sipwallEnv(t, nil, "why", "198.51.100.9")
			if code != 0 || !strings.Contains(out, `scanner signature "friendly-scanner"`) || !strings.Contains(out, "since  2025-12-01T06:20:00Z") ||
				!strings.Contains(out, "[scanner-banned]") {
				t.Errorf("why of a scanner: exit %d:\n%s", code, out)
			}
			// Listed nowhere: exit 1, like grep.
			code, out, _ = l.sipwallEnv(t, nil, "why", "192.0.2.99")
			if code != 1 || !strings.Contains(out, "192.0.2.99 is in no list") {
				t.Errorf("why of an address in no list: exit %d:\n%s", code, out)
			}
			if code, _, errs := l.sipwallEnv(t, nil, "why", "nonsense"); code != 2 || !strings.Contains(errs, "not an address") {
				t.Errorf("why nonsense: exit %d: %s", code, errs)
			}
		})
	}
}

// addScanner is the shell command that puts addr in the scanners list
// with comment, as guard does.
func addScanner(backend, addr, comment string) string {
	if backend == "iptables" {
		return `ipset add sipwall-scanners4 ` + addr + ` timeout 3600 comment "` + comment + `"`
	}
	return `nft add element inet sipwall scanners4 '{ ` + addr + ` timeout 1h comment "` + comment + `" }'`
}

// TestListsSelect: --list, --addr, --reason, --since and the summary of a
// large list, against the kernel's sets.
func TestListsSelect(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			l := newNSLab(t, backend)
			var b strings.Builder
			for i := 0; i < 100; i++ {
				b.WriteString("10.9.0." + itoa(i+1) + " # bulk\n")
			}
			file := t.TempDir() + "/bans"
			if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			l.must(t, "ban", "--from-file", file)
			l.must(t, "ban", "--reason", "Toll Fraud", "203.0.113.7", "198.51.100.0/24")
			l.must(t, "allow", "192.0.2.10")
			out := l.must(t, "lists")
			if !strings.Contains(out, "banned (102)") || !strings.Contains(out, "… and 82 more") || strings.Count(out, "10.9.0.") != 20 {
				t.Errorf("lists of 102 entries is not summarised:\n%s", out)
			}
			if out := l.must(t, "lists", "--all"); strings.Count(out, "10.9.0.") != 100 {
				t.Errorf("lists --all: %d of the 100", strings.Count(out, "10.9.0."))
			}
			if out := l.must(t, "lists", "--limit", "5", "--list", "banned"); strings.Count(out, "10.9.0.") != 5 || strings.Contains(out, "allowed") {
				t.Errorf("lists --limit 5 --list banned:\n%s", out)
			}
			out = l.must(t, "lists", "--reason", "toll fraud")
			if !strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "198.51.100.0/24") || strings.Contains(out, "10.9.0.") {
				t.Errorf("lists --reason:\n%s", out)
			}
			out = l.must(t, "lists", "--addr", "198.51.100.20")
			if !strings.Contains(out, "198.51.100.0/24") || strings.Contains(out, "203.0.113.7") {
				t.Errorf("lists --addr inside a network:\n%s", out)
			}
			out = l.must(t, "lists", "--addr", "10.9.0.0/30")
			if strings.Count(out, "10.9.0.") != 3 || !strings.Contains(out, "banned (3)") {
				t.Errorf("lists --addr of a network:\n%s", out)
			}
			if out := l.must(t, "lists", "--since", "1h"); !strings.Contains(out, "banned (102)") {
				t.Errorf("lists --since 1h:\n%s", out)
			}
			nstest.Run(t, l.ns, "sh", "-c", addScanner(backend, "198.51.100.9", "@1600000000"))
			if out := l.must(t, "lists", "--since", "1h", "--list", "scanners"); !strings.Contains(out, "scanners (0)") {
				t.Errorf("lists --since 1h shows an old entry:\n%s", out)
			}
			code, _, errs := l.sipwallEnv(t, nil, "lists", "--since", "yesterday")
			if code != 2 || !strings.Contains(errs, "--since") {
				t.Errorf("lists --since yesterday: exit %d %s", code, errs)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestBanSafety: ban refuses the host's own addresses, the SSH client's
// address or a network holding it, trusted and allowed networks without
// --force; never shortens a longer ban; allow says what shadows it; unban
// by list, reason or all with --yes.
func TestBanSafety(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			l := newNSLab(t, backend)
			nstest.Run(t, l.ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
			nstest.Run(t, l.ns, "ip", "addr", "add", "192.0.2.10/24", "dev", "d0")
			l.must(t, "allow", "198.51.100.21")
			ssh := []string{"SSH_CONNECTION=203.0.113.50 51000 192.0.2.10 22"}
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"ban", "192.0.2.10"}, "192.0.2.10 is an address of this host"},
				{[]string{"ban", "203.0.113.50"}, "the address of this SSH session's client"},
				{[]string{"ban", "203.0.113.0/24"}, "203.0.113.0/24 holds 203.0.113.50, which is the address of this SSH session's client"},
				{[]string{"ban", "198.51.100.0/24"}, "in the allowed list (198.51.100.21)"},
			} {
				before := l.kernel(t)
				code, _, errs := l.sipwallEnv(t, ssh, c.args...)
				if code != 1 || !strings.Contains(errs, c.want) || !strings.Contains(errs, "nothing changed (--force bans anyway)") {
					t.Errorf("%q: exit %d: %s", c.args, code, errs)
				}
				if l.kernel(t) != before {
					t.Errorf("%q changed the kernel", c.args)
				}
			}
			if code, out, errs := l.sipwallEnv(t, ssh, "ban", "--force", "203.0.113.0/24"); code != 0 {
				t.Errorf("ban --force: exit %d %s%s", code, out, errs)
			}
			l.must(t, "unban", "203.0.113.0/24")

			// Never shorter: a 1-day ban stays when a 1-minute one comes,
			// for the address itself and for a network around it.
			l.must(t, "ban", "--for", "1d", "--reason", "toll fraud", "203.0.113.7")
			code, out, errs := l.sipwallEnv(t, nil, "ban", "--for", "1m", "203.0.113.7")
			if code != 0 || !strings.Contains(errs, "203.0.113.7 stays banned for 23h59m") || !strings.Contains(out, "banned 0 entries") {
				t.Errorf("a shorter ban of the same address: exit %d %s%s", code, out, errs)
			}
			l.must(t, "ban", "--for", "1m", "203.0.113.0/24")
			if !l.inKernel(t, backend, "203.0.113.7") {
				t.Errorf("the 1-day ban of 203.0.113.7 is gone after a 1-minute ban of its /24:\n%s", l.kernel(t))
			}
			out = l.must(t, "why", "--json", "203.0.113.7")
			if !strings.Contains(out, `"entry": "203.0.113.7"`) || !strings.Contains(out, `"entry": "203.0.113.0/24"`) {
				t.Errorf("why after the /24:\n%s", out)
			}
			var j struct {
				Entries []struct {
					Entry     string
					ExpiresIn int64 `json:"expires_in"`
				}
			}
			json.Unmarshal([]byte(out), &j)
			for _, e := range j.Entries {
				if e.Entry == "203.0.113.7" && e.ExpiresIn < 86000 {
					t.Errorf("203.0.113.7 now expires in %d s", e.ExpiresIn)
				}
			}

			// allow under a ban: said, with the command.
			code, _, errs = l.sipwallEnv(t, nil, "allow", "203.0.113.7")
			if code != 0 || !strings.Contains(errs, "203.0.113.7 is shadowed by 203.0.113.7 in the banned list") || !strings.Contains(errs, "sipwall unban 203.0.113.7") {
				t.Errorf("allow of a banned address: exit %d: %s", code, errs)
			}
			nstest.Run(t, l.ns, "sh", "-c", addScanner(backend, "198.51.100.9", compile.SignatureComment("sipvicious")))
			out = l.must(t, "allow", "--json", "198.51.100.9")
			if !strings.Contains(out, "198.51.100.9 is shadowed by 198.51.100.9 in the scanners list") {
				t.Errorf("allow --json of a scanner:\n%s", out)
			}

			// unban in bulk.
			l.must(t, "ban", "--reason", "spam run", "192.0.2.77", "192.0.2.78")
			code, _, errs = l.sipwallEnv(t, nil, "unban", "--reason", "SPAM")
			if code != 2 || !strings.Contains(errs, "takes out 2 entries") || !strings.Contains(errs, "--yes") || !l.inKernel(t, backend, "192.0.2.77") {
				t.Errorf("unban --reason without --yes off a terminal: exit %d %s", code, errs)
			}
			if out := l.must(t, "unban", "--reason", "SPAM", "--yes"); !strings.Contains(out, "removed 2 entries") || l.inKernel(t, backend, "192.0.2.77") {
				t.Errorf("unban --reason --yes: %s", out)
			}
			if out := l.must(t, "unban", "--list", "scanners", "--yes"); !strings.Contains(out, "removed 1 entry from scanners") {
				t.Errorf("unban --list scanners: %s", out)
			}
			if out := l.must(t, "unban", "--all", "--yes", "--json"); !strings.Contains(out, `"removed": 2`) {
				t.Errorf("unban --all: %s", out)
			}
			if code, out, _ := l.sipwallEnv(t, nil, "lists", "--json", "banned"); code != 0 || strings.Contains(out, `"addr"`) {
				t.Errorf("banned after unban --all: %s", out)
			}
			if out := l.must(t, "lists", "allowed"); !strings.Contains(out, "198.51.100.21") {
				t.Errorf("unban --all touched the allowed list:\n%s", out)
			}
		})
	}
}

// inKernel reports whether addr is an element of the banned sets.
func (l *nsLab) inKernel(t *testing.T, backend, addr string) bool {
	if backend == "iptables" {
		_, err := netns.Run(t.Context(), l.ns, nil, "ipset", "test", "sipwall-banned4", addr)
		out, _ := netns.Run(t.Context(), l.ns, nil, "ipset", "list", "sipwall-banned4")
		return err == nil && strings.Contains(out, "\n"+addr+" ")
	}
	_, err := netns.Run(t.Context(), l.ns, nil, "nft", "get", "element", "inet", "sipwall", "banned4", "{ "+addr+" }")
	return err == nil
}
