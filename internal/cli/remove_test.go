package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestRollbackRemoveStatus runs the binary as an operator would: a second
// rollback is refused with exit 1 and leaves the firewall closed; status
// shows the rollback; remove saves the lists, puts the host back as it was
// (other tools' rules kept) and status says "removed".
func TestRollbackRemoveStatus(t *testing.T) {
	l := newNSLab(t, "iptables")
	nstest.Run(t, l.ns, "iptables", "-N", "f2b-sshd")
	nstest.Run(t, l.ns, "iptables", "-A", "f2b-sshd", "-s", "192.0.2.99", "-j", "REJECT")
	if code, out := l.sipwall(t, "remove", "--yes"); code != 0 {
		t.Fatalf("remove: %d %s", code, out)
	}
	before := saveNoComments(t, l.ns)
	if code, out := l.sipwall(t, "apply", "-c", lab, "--backend", "iptables", "--confirm", "0"); code != 0 {
		t.Fatalf("apply: %d %s", code, out)
	}
	if code, out := l.sipwall(t, "ban", "203.0.113.50"); code != 0 {
		t.Fatalf("ban: %d %s", code, out)
	}
	if code, out := l.sipwall(t, "apply", "-c", lab, "--backend", "iptables", "--confirm", "0"); code != 0 {
		t.Fatalf("apply: %d %s", code, out)
	}
	if code, out := l.sipwall(t, "rollback"); code != 0 || !strings.Contains(out, "rolled back to") {
		t.Fatalf("rollback: %d %s", code, out)
	}
	code, out := l.sipwall(t, "rollback")
	if code != exitFailure || !strings.Contains(out, "nothing to roll back to") || !strings.Contains(out, "nothing changed") {
		t.Errorf("second rollback: exit %d: %s", code, out)
	}
	if save := nstest.Run(t, l.ns, "iptables-save"); !strings.Contains(save, ":INPUT DROP") || !strings.Contains(save, "-j sipwall-input") {
		t.Errorf("a second rollback opened the host:\n%s", save)
	}
	_, out = l.sipwall(t, "status")
	if !strings.Contains(out, "last:     rolled back") || !strings.Contains(out, "by hand") {
		t.Errorf("status does not show the rollback:\n%s", out)
	}
	_, out = l.sipwall(t, "status", "--json")
	var js struct {
		History []struct {
			Kind, Why string
			From, To  *struct{ Backend string }
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js.History) != 2 || js.History[1].Kind != "rollback" || js.History[1].Why != "by hand" || js.History[1].To == nil {
		t.Errorf("status --json history: %v %+v\n%s", err, js, out)
	}

	// remove without --yes and no answer changes nothing.
	if code, out := l.sipwall(t, "remove"); code != exitFailure || !strings.Contains(out, "nothing changed") {
		t.Errorf("remove without --yes: exit %d: %s", code, out)
	}
	code, out = l.sipwall(t, "remove", "--yes", "--json")
	var rm struct {
		Saved int    `json:"lists_saved"`
		File  string `json:"lists_file"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rm) != nil || rm.Saved < 1 {
		t.Fatalf("remove --json: exit %d: %s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(l.stateDir, "lists.json")); err != nil || !strings.Contains(string(b), "203.0.113.50") {
		t.Errorf("the saved lists lack the ban: %v\n%s", err, b)
	}
	if after := saveNoComments(t, l.ns); after != before {
		t.Errorf("after remove iptables-save differs from before the apply:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if sets := nstest.Run(t, l.ns, "ipset", "list", "-n"); strings.Contains(sets, "sipwall") {
		t.Errorf("ipsets left: %s", sets)
	}
	_, out = l.sipwall(t, "status")
	if !strings.HasPrefix(out, "sipwall is removed:") {
		t.Errorf("status after remove:\n%s", out)
	}
	if code, out := l.sipwall(t, "remove", "--yes"); code != exitFailure || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second remove: exit %d: %s", code, out)
	}
}

var saveComment = regexp.MustCompile(`(?m)^#.*\n`)

// saveNoComments is iptables-save and ip6tables-save without their dated
// comment lines.
func saveNoComments(t *testing.T, ns string) string {
	return saveComment.ReplaceAllString(nstest.Run(t, ns, "iptables-save")+nstest.Run(t, ns, "ip6tables-save"), "")
}
