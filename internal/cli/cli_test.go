package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const lab = "../../examples/lab.yaml"

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sipwall.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompilePrintsAllThreeFiles(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	code, out, errs := run(t, "compile", "-c", lab, "--backend", "iptables")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, h := range []string{"### rules.v4 (iptables-restore)", "### rules.v6 (ip6tables-restore)", "### ipsets", "*raw", "*filter", "create sipwall-admitted4"} {
		if !strings.Contains(out, h) {
			t.Errorf("output lacks %q", h)
		}
	}
	if !strings.Contains(errs, "note: Scanner signatures, the hostname knock") {
		t.Errorf("no note on what is enforced where: %s", errs)
	}
	code, out, errs = run(t, "compile", "-c", lab, "--backend", "nftables")
	if code != 0 || !strings.HasPrefix(out, "#!/usr/sbin/nft -f") || !strings.Contains(errs, "sipwall guard") {
		t.Errorf("nftables: exit %d, stderr %s", code, errs)
	}
}

func TestCompileWritesFilesForIptablesPersistent(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	dir := filepath.Join(t.TempDir(), "iptables")
	if code, _, errs := run(t, "compile", "-c", lab, "-o", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range []string{"rules.v4", "rules.v6", "ipsets"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A bad policy changes nothing that is already there.
	before, _ := os.ReadFile(filepath.Join(dir, "rules.v4"))
	bad := writePolicy(t, "ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\n  mode: hostnme\n")
	code, out, errs := run(t, "compile", "-c", bad, "-o", dir)
	if code != exitUsage || out != "" || !strings.Contains(errs, bad+":4: sip.mode: \"hostnme\" is not a mode") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "rules.v4"))
	if !bytes.Equal(before, after) {
		t.Error("a failed compile changed rules.v4")
	}
}

func TestBadInput(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	lockout := writePolicy(t, "sip:\n  hostnames: [pbx.example-secret.net]\n")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"missing file", []string{"compile", "-c", "/nonexistent/sipwall.yaml"}, exitUsage, "/nonexistent/sipwall.yaml: cannot read policy: no such file or directory"},
		{"bad backend", []string{"compile", "-c", lab, "--backend", "pf"}, exitUsage, `unknown backend "pf"`},
		{"bad flag", []string{"compile", "--frob"}, exitUsage, "flag provided but not defined: -frob"},
		{"stray argument", []string{"compile", "-c", lab, "extra"}, exitUsage, `unexpected argument "extra"`},
		{"article on nftables", []string{"compile", "-c", lab, "--backend", "nftables", "--profile", "article"}, exitUsage, "the article profile is an iptables ruleset"},
		{"unknown profile", []string{"compile", "-c", lab, "--profile", "paranoid"}, exitUsage, `unknown profile "paranoid"`},
		{"lockout", []string{"compile", "-c", lockout}, exitFailure, "locks you out"},
		{"check lockout", []string{"check", "-c", lockout}, exitFailure, ""},
		{"check missing", []string{"check", "-c", "/nonexistent.yaml"}, exitUsage, "cannot read policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.stderr)
			}
		})
	}
	if code, _, _ := run(t, "compile", "-c", lockout, "--force"); code != 0 {
		t.Errorf("--force: exit %d", code)
	}
}

func TestCheck(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "198.51.100.5 50000 127.0.0.1 2222")
	code, out, _ := run(t, "check", "-c", lab)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, `"eyeBeam" also matches a real phone`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "with --backend nftables:") || !strings.Contains(out, "nflog group 5060") {
		t.Errorf("check does not say what is enforced where:\n%s", out)
	}
	// The SSH session arrives on 22, which the policy does not admit.
	t.Setenv("SSH_CONNECTION", "10.9.8.7 50000 127.0.0.1 22")
	code, out, _ = run(t, "check", "-c", lab, "--json")
	var res struct {
		OK       bool             `json:"ok"`
		Findings []policy.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != exitFailure || res.OK {
		t.Errorf("exit %d, ok %v", code, res.OK)
	}
	found := false
	for _, f := range res.Findings {
		if f.Severity == policy.SevError && strings.Contains(f.Message, "arrives on port 22") {
			found = true
		}
	}
	if !found {
		t.Errorf("no lockout error for the live SSH session: %+v", res.Findings)
	}
	if code, _, _ := run(t, "check", "-c", lab, "--force"); code != 0 {
		t.Errorf("check --force: exit %d", code)
	}
	// A session into another host or namespace does not cross this firewall.
	t.Setenv("SSH_CONNECTION", "10.9.8.7 50000 203.0.113.99 22")
	if code, out, _ := run(t, "check", "-c", lab); code != 0 {
		t.Errorf("a session to an address not on this host counted: exit %d\n%s", code, out)
	}
	// An SSH client in a bogon range would lose new connections.
	t.Setenv("SSH_CONNECTION", "10.9.8.7 50000 127.0.0.1 2222")
	code, out, _ = run(t, "check", "-c", lab)
	if code != exitFailure || !strings.Contains(out, "your SSH client 10.9.8.7 is in the bogon range 10.0.0.0/8") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestInit(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sshd_config.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte("Include sshd_config.d/*.conf\nPort 2222\nMatch User bob\n  Port 9999\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sshd_config.d", "10-extra.conf"), []byte("Port 22022\n"), 0o644)
	out := filepath.Join(dir, "etc", "sipwall.yaml")
	code, _, errs := run(t, "init", "-o", out, "--hostname", "pbx-7f3k.example.net", "--sshd-config", filepath.Join(dir, "sshd_config"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	p, err := policy.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, sp := range p.SSH.Ports {
		ports = append(ports, int(sp.From))
	}
	if len(ports) != 2 || ports[0] != 22022 || ports[1] != 2222 {
		t.Errorf("ssh ports = %v, want [22022 2222] (the Match block's 9999 is conditional)", ports)
	}
	if p.SIP.Mode != policy.ModeHostname || p.SIP.Hostnames[0] != "pbx-7f3k.example.net" {
		t.Errorf("sip = %+v", p.SIP)
	}
	if code, _, errs := run(t, "init", "-o", out); code != exitFailure || !strings.Contains(errs, "exists") {
		t.Errorf("overwrote an existing policy: exit %d %s", code, errs)
	}
	os.WriteFile(filepath.Join(dir, "sshd_default"), []byte("PasswordAuthentication no\n"), 0o644)
	code, text, _ := run(t, "init", "-o", "-", "--sshd-config", filepath.Join(dir, "sshd_default"))
	if code != 0 || !strings.Contains(text, "mode: open") || !strings.Contains(text, "ports: [22]") {
		t.Errorf("init without hostname: exit %d\n%s", code, text)
	}
}

func TestApplyRefusesToCutTheSSHSession(t *testing.T) {
	// apply must refuse before touching the kernel; should it not, it
	// touches a throw-away namespace, never the host's.
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "cli")
	dir := t.TempDir()
	t.Setenv("SIPWALL_STATE_DIR", dir)
	var code int
	var errs string
	err := netns.Do(ns, func() error {
		// The session arrives on this namespace's loopback, port 22.
		t.Setenv("SSH_CONNECTION", "198.51.100.5 50000 127.0.0.1 22")
		code, _, errs = run(t, "apply", "-c", lab, "--backend", "nftables")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if code != exitFailure || !strings.Contains(errs, "arrives on port 22") || !strings.Contains(errs, "Nothing changed") {
		t.Errorf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		t.Error("a refused apply wrote state")
	}
	if out := nstest.Run(t, ns, "nft", "list", "tables"); strings.Contains(out, "sipwall") {
		t.Errorf("a refused apply loaded a ruleset:\n%s", out)
	}
	for _, args := range [][]string{
		{"apply", "-c", lab, "--confirm", "soon"},
		{"apply", "-c", lab, "--backend", "pf"},
	} {
		if code, _, _ := run(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errs := run(t, "confirm"); code != exitFailure || !strings.Contains(errs, "nothing to confirm") {
		t.Errorf("confirm with nothing pending: exit %d %s", code, errs)
	}
}
