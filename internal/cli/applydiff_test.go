package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestUnifiedDiffPatches: the ruleset diff is a real unified diff: patch(1)
// turns the applied file into the new one.
func TestUnifiedDiffPatches(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Fatal("patch is not installed (scripts/test installs it)")
	}
	var a, b []string
	for i := 0; i < 60; i++ {
		a = append(a, "line "+string(rune('a'+i%26))+string(rune('0'+i/26)))
	}
	b = append(b, a[:5]...)
	b = append(b, "inserted at 5")
	b = append(b, a[6:30]...) // line 5 replaced
	b = append(b, a[31:]...)  // line 30 removed
	b = append(b, "appended")
	old, new := strings.Join(a, "\n")+"\n", strings.Join(b, "\n")+"\n"
	d := unifiedDiff("applied/f", "new/f", old, new)
	if !strings.Contains(d, "@@ -3,7 +3,7 @@") || !strings.Contains(d, "-line f0\n+inserted at 5\n") {
		t.Errorf("diff:\n%s", d)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte(old), 0o644)
	cmd := exec.Command("patch", f)
	cmd.Stdin = strings.NewReader(d)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s\n%s", err, out, d)
	}
	if got, _ := os.ReadFile(f); string(got) != new {
		t.Errorf("patched file differs from the new one:\n%s", got)
	}
	if unifiedDiff("a", "b", old, old) != "" {
		t.Error("a diff of equal files is not empty")
	}
}

// TestApplyPreview: --dry-run and --diff say what would change and change
// nothing; apply prints what is open to whom; a comment-only edit of the
// policy is no ruleset change in status.
func TestApplyPreview(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft", "conntrack")
	l := &nsLab{ns: nstest.New(t, "preview"), stateDir: t.TempDir(), bin: sipwallBinary(t)}
	before := saveNoComments(t, l.ns)
	code, out := l.sipwall(t, "apply", "-c", lab, "--backend", "iptables", "--confirm", "0", "--dry-run")
	if code != 0 || !strings.Contains(out, "would be new") || !strings.Contains(out, "opened SSH tcp/2222") {
		t.Errorf("dry run on a fresh host: exit %d:\n%s", code, out)
	}
	if saveNoComments(t, l.ns) != before {
		t.Error("--dry-run changed the kernel")
	}
	if _, err := os.Stat(filepath.Join(l.stateDir, "state.json")); err == nil {
		t.Error("--dry-run wrote state")
	}

	code, out = l.sipwall(t, "apply", "-c", lab, "--backend", "iptables", "--confirm", "0")
	if code != 0 || !strings.Contains(out, "open now:") || !regexpMatch(`SSH\s+tcp\s+2222\s+everyone not banned`, out) ||
		!regexpMatch(`SIP\s+udp\s+5060-5082\s+phones that sent a secret hostname`, out) || !regexpMatch(`RTP\s+udp\s+10000-20000`, out) ||
		!regexpMatch(`trap\s+tcp\s+\S*22\S*\s+a touch bans`, out) || !strings.Contains(out, "lists kept:") {
		t.Errorf("apply summary: exit %d:\n%s", code, out)
	}
	if code, out := l.sipwall(t, "ban", "203.0.113.50"); code != 0 {
		t.Fatalf("ban: %s", out)
	}

	// A comment-only edit: the file changed, the ruleset did not.
	text, _ := os.ReadFile(lab)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pol, text, 0o644)
	if code, out := l.sipwall(t, "apply", "-c", pol, "--backend", "iptables", "--confirm", "0", "--json"); code != 0 || !strings.Contains(out, `"banned": 1`) {
		t.Fatalf("apply --json: exit %d:\n%s", code, out)
	}
	os.WriteFile(pol, append([]byte("# reviewed by the night shift\n"), text...), 0o644)
	code, out = l.sipwall(t, "status")
	if code != 0 || !strings.Contains(out, "its ruleset did not") || !strings.Contains(out, "drift:    none") {
		t.Errorf("status after a comment-only edit: exit %d:\n%s", code, out)
	}
	_, out = l.sipwall(t, "status", "--json")
	var js struct {
		PolicyChanged  bool  `json:"policy_changed"`
		RulesetChanged *bool `json:"ruleset_changed"`
		Drift          bool  `json:"drift"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || !js.PolicyChanged || js.RulesetChanged == nil || *js.RulesetChanged || js.Drift {
		t.Errorf("status --json after a comment-only edit: %v %+v\n%s", err, js, out)
	}
	code, out = l.sipwall(t, "apply", "-c", pol, "--dry-run")
	if code != 0 || !strings.Contains(out, "no change") {
		t.Errorf("dry run of a comment-only edit: exit %d:\n%s", code, out)
	}

	// A real change: SSH moves to 2223.
	os.WriteFile(pol, []byte(strings.Replace(string(text), "ports: [2222]", "ports: [2223]", 1)), 0o644)
	state, _ := os.ReadFile(filepath.Join(l.stateDir, "state.json"))
	applied := saveNoComments(t, l.ns)
	code, out = l.sipwall(t, "apply", "-c", pol, "--diff")
	for _, want := range []string{"rules:   2 added, 2 removed", "+ opened SSH tcp/2223", "- closed SSH tcp/2222", "--- applied/rules.v4\n+++ new/rules.v4\n",
		"\n--A sipwall-input -p tcp --dport 2222 -m comment --comment \"SSH\" -j ACCEPT\n+-A sipwall-input -p tcp --dport 2223"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --diff lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("apply --diff: exit %d", code)
	}
	if saveNoComments(t, l.ns) != applied {
		t.Error("--diff changed the kernel")
	}
	if now, _ := os.ReadFile(filepath.Join(l.stateDir, "state.json")); string(now) != string(state) {
		t.Error("--diff changed the state")
	}
	_, out = l.sipwall(t, "status")
	if !strings.Contains(out, "and so does its ruleset") {
		t.Errorf("status after a real edit:\n%s", out)
	}
	code, out = l.sipwall(t, "compile", "-c", pol, "--diff", "--json")
	var d genDiff
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 || d.To != "iptables" || len(d.RulesAdded) != 2 || len(d.Opened) != 1 || d.Opened[0].Ports != "2223" {
		t.Errorf("compile --diff --json: exit %d, %v, %+v\n%s", code, err, d, out)
	}
	// Against nftables: a backend switch, every rule new, the lists carried.
	code, out = l.sipwall(t, "compile", "-c", pol, "--diff", "--backend", "nftables")
	if code != 0 || !strings.Contains(out, "backend: iptables → nftables") || !strings.Contains(out, "+++ new/sipwall.nft") {
		t.Errorf("compile --diff --backend nftables: exit %d:\n%s", code, out)
	}
}

func regexpMatch(re, s string) bool {
	return regexp.MustCompile(re).MatchString(s)
}
