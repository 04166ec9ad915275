package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/policy"
)

// initHost points init at a fake host: an sshd_config, an Asterisk
// configuration directory (init's default) whose asterisk.conf puts the
// logs in a log directory, and systemd unit directories. It returns the
// first three.
func initHost(t *testing.T, sshd string) (sshdConfig, asteriskDir, logDir string) {
	t.Helper()
	dir := t.TempDir()
	sshdConfig = filepath.Join(dir, "sshd_config")
	if sshd != "" {
		os.WriteFile(sshdConfig, []byte(sshd), 0o644)
	}
	asteriskDir, logDir = filepath.Join(dir, "asterisk"), filepath.Join(dir, "log")
	os.MkdirAll(asteriskDir, 0o755)
	os.MkdirAll(logDir, 0o755)
	os.WriteFile(filepath.Join(asteriskDir, "asterisk.conf"), []byte("[directories](!)\nastlogdir => "+logDir+"\n"), 0o644)
	units := filepath.Join(dir, "units")
	os.MkdirAll(units, 0o755)
	oldUnits, oldAst := systemdUnitDirs, initAsteriskDir
	systemdUnitDirs, initAsteriskDir = []string{units}, asteriskDir
	t.Cleanup(func() { systemdUnitDirs, initAsteriskDir = oldUnits, oldAst })
	t.Setenv("SSH_CONNECTION", "")
	return sshdConfig, asteriskDir, logDir
}

func initPolicy(t *testing.T, args ...string) (*policy.Policy, string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sipwall.yaml")
	code, _, stderr := run(t, append([]string{"init", "-o", out}, args...)...)
	if code != exitOK {
		t.Fatalf("init %v: exit %d: %s", args, code, stderr)
	}
	p, err := policy.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return p, out, stderr
}

// TestInitFindsAsteriskLogs: init writes the Asterisk log guard should
// follow into the guard section: the security channel first, then
// messages or full, then the journal when Asterisk logs to syslog; one
// source only. Without any, the section stays commented out and init
// says so.
func TestInitFindsAsteriskLogs(t *testing.T) {
	for _, c := range []struct {
		name    string
		files   []string
		logger  string
		unit    bool
		want    string // the guard.logs entry, "" for none
		note    string
		comment bool
	}{
		{"security and messages", []string{"security", "messages", "full"}, "", false, "LOG/security", "", false},
		{"security.log", []string{"security.log", "messages.log"}, "", false, "LOG/security.log", "", false},
		{"messages", []string{"messages", "full"}, "", false, "LOG/messages", "holds failed logins as notices", false},
		{"full", []string{"full"}, "", false, "LOG/full", "security => security", false},
		{"logger.conf's security channel", []string{"auth.log", "messages"}, "[logfiles]\nauth.log => security\nmessages => notice\n", false, "LOG/auth.log", "", false},
		{"journal", nil, "[logfiles]\nsyslog.local0 => notice,warning,error,security\n", true, "journal:asterisk.service", "", false},
		{"syslog without the unit", nil, "[logfiles]\nsyslog.local0 => security\n", false, "", "no Asterisk log found in LOG", true},
		{"nothing", nil, "", true, "", "no Asterisk log found in LOG", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sshd, ast, logDir := initHost(t, "Port 2222\n")
			for _, f := range c.files {
				os.WriteFile(filepath.Join(logDir, f), nil, 0o640)
			}
			if c.logger != "" {
				os.WriteFile(filepath.Join(ast, "logger.conf"), []byte(c.logger), 0o644)
			}
			if c.unit {
				os.WriteFile(filepath.Join(systemdUnitDirs[0], "asterisk.service"), []byte("[Service]\n"), 0o644)
			}
			p, out, stderr := initPolicy(t, "--sshd-config", sshd, "--hostname", "pbx-7f3k.example.net")
			want := strings.ReplaceAll(c.want, "LOG", logDir)
			if got := strings.Join(p.Guard.Logs, ","); got != want {
				t.Errorf("guard.logs = %q, want %q", got, want)
			}
			if note := strings.ReplaceAll(c.note, "LOG", logDir); !strings.Contains(stderr, note) {
				t.Errorf("stderr %q lacks %q", stderr, note)
			}
			text, _ := os.ReadFile(out)
			if strings.Contains(string(text), "\n# guard:\n") != c.comment || !strings.Contains(string(text), "findtime: 10m") {
				t.Errorf("guard section (commented out: %v):\n%s", c.comment, text)
			}
		})
	}
}

// TestInitPolicyIsLintClean: what init writes passes the tool's own lint
// without a warning, with sshd on 22 (a default trap port) or elsewhere.
func TestInitPolicyIsLintClean(t *testing.T) {
	for _, sshd := range []string{"Port 22\n", "Port 2222\n", "Port 22\nPort 23\n"} {
		cfg, _, logDir := initHost(t, sshd)
		os.WriteFile(filepath.Join(logDir, "security"), nil, 0o640)
		p, out, _ := initPolicy(t, "--sshd-config", cfg, "--hostname", "pbx-7f3k.example.net")
		if len(p.Guard.Logs) != 1 {
			t.Errorf("guard.logs %v", p.Guard.Logs)
		}
		code, text, stderr := run(t, "check", "-c", out, "--json")
		var res struct {
			OK       bool              `json:"ok"`
			Findings []json.RawMessage `json:"findings"`
		}
		if err := json.Unmarshal([]byte(text), &res); err != nil {
			t.Fatalf("%q: %v: %s %s", sshd, err, text, stderr)
		}
		if code != exitOK || !res.OK || len(res.Findings) != 0 {
			t.Errorf("sshd %q: check: exit %d, findings:\n%s", sshd, code, text)
		}
	}
}

// TestInitSSHPorts: init reads the ports sshd listens on with the audit's
// parser (so the two agree), honours ListenAddress with a port, refuses a
// named sshd_config that does not exist and says when it assumes port 22.
func TestInitSSHPorts(t *testing.T) {
	ports := func(p *policy.Policy) []int {
		var out []int
		for _, sp := range p.SSH.Ports {
			out = append(out, int(sp.From))
		}
		return out
	}
	cfg, ast, _ := initHost(t, "Port 22\nListenAddress 0.0.0.0:2200\n")
	p, _, _ := initPolicy(t, "--sshd-config", cfg)
	if got := ports(p); len(got) != 1 || got[0] != 2200 {
		t.Errorf("ssh.ports = %v, want [2200]", got)
	}
	// audit on the same file: sshd does not listen on 22.
	_, report, _ := run(t, "audit", "--json", "--sshd-config", cfg, "--asterisk-dir", ast, "--proc", t.TempDir(), "--sys", t.TempDir())
	if strings.Contains(report, "sshd.port22") {
		t.Errorf("audit says port 22 where init found 2200:\n%s", report)
	}

	// A named file that does not exist is an error; nothing is written.
	missing := filepath.Join(t.TempDir(), "sshd_config")
	out := filepath.Join(t.TempDir(), "sipwall.yaml")
	code, _, stderr := run(t, "init", "-o", out, "--sshd-config", missing)
	if code != exitUsage || !strings.Contains(stderr, "--sshd-config "+missing+": no such file or directory") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a policy was written")
	}
	// The default file missing: port 22, and init says so.
	old := initSSHDConfig
	initSSHDConfig = missing
	t.Cleanup(func() { initSSHDConfig = old })
	p, _, stderr = initPolicy(t)
	if got := ports(p); len(got) != 1 || got[0] != 22 {
		t.Errorf("ssh.ports = %v, want [22]", got)
	}
	for _, want := range []string{"note: cannot read " + missing, "give --sshd-config FILE", "note: SSH port 22 assumed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	// The SSH session's port is used when sshd_config cannot be read.
	t.Setenv("SSH_CONNECTION", "198.51.100.5 50000 192.0.2.10 2022")
	p, _, stderr = initPolicy(t)
	if got := ports(p); len(got) != 1 || got[0] != 2022 || strings.Contains(stderr, "22 assumed") {
		t.Errorf("ssh.ports = %v (%s), want [2022]", got, stderr)
	}
}
