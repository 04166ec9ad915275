package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/audit"
	sw "github.com/sipwall/sipwall/internal/backend"
)

// TestAuditPolicyErrors: audit loads the policy like every other command:
// a bad or missing policy is refused with exit 2, the file, line and key
// named, and nothing audited.
func TestAuditPolicyErrors(t *testing.T) {
	bad := writePolicy(t, "ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\nguard:\n  maxretry: 0\n")
	missing := filepath.Join(t.TempDir(), "none.yaml")
	for _, c := range []struct {
		file, want string
	}{
		{bad, "sipwall audit: " + bad + ":5: guard.maxretry: 0 is out of range (1 to 1000)"},
		{missing, "sipwall audit: " + missing + ": cannot read policy: no such file or directory"},
	} {
		code, out, stderr := run(t, "audit", "-c", c.file, "--sshd-config", "/nonexistent", "--asterisk-dir", "/nonexistent")
		if code != exitUsage || !strings.Contains(stderr, c.want) || out != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, stderr, exitUsage, c.want)
		}
	}
}

// TestAuditPolicyExposure: the exposure the audit compares the host with
// is the policy's own.
func TestAuditPolicyExposure(t *testing.T) {
	t.Setenv("SIPWALL_STATE_DIR", t.TempDir())
	pf := writePolicy(t, "ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\naccept: {tcp: [25]}\ntraps:\n  ports: {3306: accept}\n")
	exp, _, err := policyExposure(context.Background(), pf)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.IPv6 || exp.DefaultAccept || exp.Backend != "" {
		t.Errorf("exposure %+v", exp)
	}
	has := func(rs []audit.PortRange, first, last uint16) bool {
		for _, r := range rs {
			if r.First == first && r.Last == last {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		name        string
		rs          []audit.PortRange
		first, last uint16
		want        bool
	}{
		{"ssh", exp.TCPPorts, 2222, 2222, true},
		{"sip tcp", exp.TCPPorts, 5060, 5082, true},
		{"extra tcp", exp.TCPPorts, 25, 25, true},
		{"accepted trap", exp.TCPPorts, 3306, 3306, true},
		{"sip udp", exp.UDPPorts, 5060, 5082, true},
		{"rtp", exp.UDPPorts, 10000, 20000, true},
		{"trap 23", exp.TrapTCPPorts, 23, 23, true},
		{"accepted trap is no trap", exp.TrapTCPPorts, 3306, 3306, false},
	} {
		if has(c.rs, c.first, c.last) != c.want {
			t.Errorf("%s %d-%d: present %v", c.name, c.first, c.last, !c.want)
		}
	}
}

// TestAuditFirewallLists: with a ruleset applied in a namespace, the audit
// reads the lists' entries through the backend's set store, on both
// backends.
func TestAuditFirewallLists(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			l := newNSLab(t, backend)
			if code, out := l.sipwall(t, "ban", "198.51.100.77", "198.51.100.78"); code != 0 {
				t.Fatalf("ban: exit %d: %s", code, out)
			}
			fw := firewallState{m: &apply.Manager{Host: sw.Host{NS: l.ns}, StateDir: l.stateDir}}
			st, err := fw.FirewallStatus(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !st.Applied || len(st.Drift) != 0 {
				t.Errorf("applied %v, drift %v", st.Applied, st.Drift)
			}
			// Counted per kernel set: both addresses in the IPv4 banned set.
			banned, total := 0, 0
			for _, ls := range st.Lists {
				total += ls.Entries
				if strings.Contains(ls.Name, "banned") {
					banned += ls.Entries
				}
			}
			if banned != 2 || total != 2 {
				t.Errorf("lists %+v: want the two bans, and nothing else", st.Lists)
			}
		})
	}
}
