package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReportJSON(t *testing.T) {
	r := newReport([]Finding{
		{Severity: Low, Check: "b.low", File: "/etc/x", Line: 3, Found: "f", Why: "w", Fix: "x"},
		{Severity: High, Check: "a.high", Found: "f2", Why: "w2", Fix: "x2"},
		{Severity: Info, Check: "c.info", File: "/etc/y", Found: "f3", Why: "w3", Fix: "x3"},
	})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"findings": []any{
			map[string]any{"severity": "high", "check": "a.high", "found": "f2", "why": "w2", "fix": "x2"},
			map[string]any{"severity": "low", "check": "b.low", "file": "/etc/x", "line": 3.0, "found": "f", "why": "w", "fix": "x"},
			map[string]any{"severity": "info", "check": "c.info", "file": "/etc/y", "found": "f3", "why": "w3", "fix": "x3"},
		},
		"summary": map[string]any{"high": 1.0, "medium": 0.0, "low": 1.0, "info": 1.0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("decoding the report back: %v", err)
	}
	if diff := cmp.Diff(r, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestReportEmptyJSONHasArray(t *testing.T) {
	var buf bytes.Buffer
	if err := newReport(nil).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"findings": []`) {
		t.Errorf("an empty report has an empty findings array:\n%s", buf.String())
	}
}

func TestReportText(t *testing.T) {
	r := newReport([]Finding{
		{Severity: Medium, Check: "sshd.port22", File: "/etc/ssh/sshd_config", Line: 4, Found: "sshd listens on port 22", Why: "scanners", Fix: "Port 2222"},
		{Severity: High, Check: "firewall.drift", Found: "differs:\n-A INPUT x", Why: "w", Fix: "apply"},
	})
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := `HIGH (1)
  [firewall.drift]
    found: differs:
           -A INPUT x
    why:   w
    fix:   apply

MEDIUM (1)
  [sshd.port22] /etc/ssh/sshd_config:4
    found: sshd listens on port 22
    why:   scanners
    fix:   Port 2222

1 high, 1 medium, 0 low, 0 info
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{Info, Low, Medium, High} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%s: round trip gave %v, %v", s, back, err)
		}
	}
	if _, err := Severity(7).MarshalText(); err == nil {
		t.Error("an invalid severity must not marshal")
	}
	if _, err := ParseSeverity("critical"); err == nil {
		t.Error("unknown severity accepted")
	}
}

// TestWholeHost audits a copy of a complete host: the shipped Asterisk
// samples, the insecure sshd, and the fake /proc and /sys.
func TestWholeHost(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "testdata/sshd/insecure", root)
	ast := installSamples(t)
	proc, sys := fakeHost(t)
	exp := pbxExposure()
	exp.Profile = ProfileArticle
	exp.DefaultAccept = true
	r, err := Audit(context.Background(), Config{
		SSHDConfig:  filepath.Join(root, "etc/ssh/sshd_config"),
		AsteriskDir: ast,
		Proc:        proc,
		Sys:         sys,
		Exposure:    exp,
		Firewall:    fakeFirewall{st: FirewallStatus{Applied: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasHigh() {
		t.Error("PermitRootLogin yes and unfiltered IPv6 must make the audit fail")
	}
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Check]++
	}
	for check, n := range map[string]int{
		"sshd.permit_root_login":    1,
		"sshd.password_auth":        1,
		"modules.unused_listener":   6,
		"iax.guest":                 1,
		"sockets.unnamed_reachable": 3,
		"sockets.ipv6_unfiltered":   2,
		"kernel.ipv6_unfiltered":    1,
		"policy.not_given":          0,
		"firewall.not_checked":      0,
		"kernel.xt_recent_limits":   0,
	} {
		if counts[check] != n {
			t.Errorf("%s: %d findings, want %d", check, counts[check], n)
		}
	}
	s := r.Summary
	if s.High+s.Medium+s.Low+s.Info != len(r.Findings) {
		t.Errorf("summary %+v does not add up to %d findings", s, len(r.Findings))
	}
}

func TestAuditCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Audit(ctx, Config{SSHDConfig: os.DevNull, AsteriskDir: t.TempDir(), Proc: t.TempDir(), Sys: t.TempDir()}); err == nil {
		t.Error("a cancelled audit must return an error")
	}
}

func TestPolicyGivenButNotCompared(t *testing.T) {
	r := runAudit(t, Config{PolicyFile: "/etc/sipwall/policy.yaml"})
	find(t, r, "policy.not_compared", "policy.yaml:0")
	for _, f := range r.Findings {
		if f.Check == "policy.not_given" {
			t.Error("policy.not_given contradicts -c")
		}
	}
}
