package guard

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	_ "github.com/sipwall/sipwall/internal/backend/builtin"
	"github.com/sipwall/sipwall/internal/policy"
)

const setupPolicy = `ssh: {ports: [2222]}
sip:
  hostnames: [pbx.example-secret.net]
  scanners: {ban_for: 2h}
trusted:
  all: [10.9.0.0/16]
  sip: [198.51.100.0/24]
  hosts: [{name: home.example.net, access: sip}]
guard:
  logs: [security, /var/log/asterisk/messages, "journal:asterisk.service"]
  ami: {address: "127.0.0.1:5038", user: sipwall, secret_file: ami.secret}
  findtime: 2m
  maxretry: 3
  bantime: 30m
  bantime_factor: 4
  max_bantime: 48h
  never_ban: [192.0.2.0/24]
  ipv6_prefix: 64
  ignore_self: false
  metrics: "off"
  poll: 50ms
  max_line: 4096
`

// loadPolicy writes text as a policy file (and secret, when not empty,
// as ami.secret beside it) and loads it.
func loadPolicy(t *testing.T, text, secret string) *policy.Policy {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "sipwall.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		if err := os.WriteFile(filepath.Join(dir, "ami.secret"), []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := policy.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSetupReadsThePolicy(t *testing.T) {
	p := loadPolicy(t, setupPolicy, "s3cret\nignored\n")
	d, err := Setup(p, Env{StateDir: "/state", Backend: "nftables"})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Settings
	dir := filepath.Dir(p.Source)
	if got := strings.Join(s.Logs, ","); got != filepath.Join(dir, "security")+",/var/log/asterisk/messages,journal:asterisk.service" {
		t.Errorf("logs %s: a relative file is relative to the policy", got)
	}
	if s.AMI == nil || s.AMI.Addr != "127.0.0.1:5038" || s.AMI.Username != "sipwall" || s.AMI.Secret != "s3cret" {
		t.Errorf("AMI %+v", s.AMI)
	}
	j := s.Jail
	if j.FindTime != 2*time.Minute || j.MaxRetry != 3 || j.BanTime != 30*time.Minute || j.BanFactor != 4 || j.MaxBanTime != 48*time.Hour || j.IPv6Prefix != 64 || len(j.Self) != 0 {
		t.Errorf("jail %+v", j)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("198.51.100.0/24")}
	if len(j.NeverBan) != len(want) {
		t.Fatalf("never banned %v, want %v", j.NeverBan, want)
	}
	for i := range want {
		if j.NeverBan[i] != want[i] {
			t.Errorf("never banned %v, want %v", j.NeverBan, want)
		}
	}
	if s.Backend != backend.NFTables || s.StateDir != "/state" || s.ScannerBanFor != 2*time.Hour || strings.Join(s.Hosts, ",") != "home.example.net" {
		t.Errorf("settings %+v", s)
	}
	if !s.Inspect || s.Metrics != "off" || s.Poll != 50*time.Millisecond || s.MaxLine != 4096 || s.ResolveEvery != 5*time.Minute || s.SaveEvery != 5*time.Minute {
		t.Errorf("settings %+v", s)
	}

	// A secret given directly wins over the file.
	d, err = Setup(p, Env{AMISecret: "direct"})
	if err != nil || d.Settings.AMI.Secret != "direct" {
		t.Errorf("secret: %v %+v", err, d)
	}
	// ignore_self exempts this host's own addresses.
	p.Guard.IgnoreSelf = true
	if c := JailConfig(p); len(c.Self) == 0 {
		t.Errorf("ignore_self: no own addresses in %+v", c)
	}
}

func TestSetupRefuses(t *testing.T) {
	noSecret := loadPolicy(t, setupPolicy, "")
	emptySecret := loadPolicy(t, setupPolicy, "\n \n")
	line := 0
	for i, l := range strings.Split(setupPolicy, "\n") {
		if strings.Contains(l, "secret_file") {
			line = i + 1
		}
	}
	nothing := loadPolicy(t, "ssh: {ports: [2222]}\nsip: {hostnames: [pbx.example-secret.net]}\nguard: {inspect: false}\n", "")
	inspectOnly := loadPolicy(t, "ssh: {ports: [2222]}\nsip: {hostnames: [pbx.example-secret.net]}\n", "")
	for _, c := range []struct {
		name string
		p    *policy.Policy
		env  Env
		want string
	}{
		{"missing secret file", noSecret, Env{}, noSecret.Source + ":" + strconv.Itoa(line) + ": guard.ami.secret_file: the AMI secret: open " + filepath.Join(filepath.Dir(noSecret.Source), "ami.secret")},
		{"empty secret file", emptySecret, Env{}, "guard.ami.secret_file: the AMI secret: " + filepath.Join(filepath.Dir(emptySecret.Source), "ami.secret") + " is empty"},
		{"unknown backend", emptySecret, Env{Backend: "pf", AMISecret: "x"}, `unknown backend "pf"`},
		{"nothing to watch", nothing, Env{}, "nothing to watch: no log file or journal (guard.logs, --log), no AMI account (guard.ami, --ami), and the inspector is off"},
		{"inspector on iptables", inspectOnly, Env{Backend: "iptables"}, "the iptables backend has no inspector"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Setup(c.p, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Setup = %v, %v; want an error with %q", d, err, c.want)
			}
		})
	}
	// A secret file given by a flag is named by the flag, relative to the
	// working directory.
	noSecret.Guard.AMI.SecretFile = "nonexistent.secret"
	noSecret.SetByFlag("guard.ami.secret_file", "--ami-secret-file")
	if _, err := Setup(noSecret, Env{}); err == nil || !strings.HasPrefix(err.Error(), "--ami-secret-file: the AMI secret: open nonexistent.secret") {
		t.Errorf("Setup: %v", err)
	}
	// The inspector alone is enough on nftables (the backend may be read
	// from the state directory later).
	if _, err := Setup(inspectOnly, Env{}); err != nil {
		t.Errorf("inspector only: %v", err)
	}
}

func TestCheckLog(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "security")
	os.WriteFile(file, []byte("x\n"), 0o640)
	for _, c := range []struct {
		path, problem string
		missing       bool
	}{
		{file, "", false},
		{filepath.Join(dir, "messages"), "does not exist", true},
		{dir, "is a directory, not a log file", false},
	} {
		problem, missing := CheckLog(c.path)
		if problem != c.problem || missing != c.missing {
			t.Errorf("CheckLog(%s) = %q, %v; want %q, %v", c.path, problem, missing, c.problem, c.missing)
		}
	}
}

// TestRunWithoutUsableSource: every log missing or unreadable and nothing
// else to watch: Run refuses with ErrNoSource, naming each log, and
// records it in guard's status.
func TestRunWithoutUsableSource(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	p := loadPolicy(t, "ssh: {ports: [2222]}\nsip: {hostnames: [pbx.example-secret.net]}\nguard: {metrics: \"off\"}\n", "")
	p.Guard.Logs = []string{filepath.Join(dir, "security"), dir}
	d, err := Setup(p, Env{StateDir: state, Backend: "iptables"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("Run = %v, want ErrNoSource", err)
	}
	for _, want := range []string{"log " + filepath.Join(dir, "security") + " does not exist", "log " + dir + " is a directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	st, ok, err := ReadStatus(state)
	if err != nil || !ok || st.Running || len(st.Problems) != 2 || st.Backend != "iptables" || st.PID != os.Getpid() {
		t.Errorf("status %+v, %v, %v", st, ok, err)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadStatus(dir); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := Status{PID: 42, Running: true, At: at, Backend: "nftables", Logs: []string{"/a"}, AMI: "127.0.0.1:5038",
		Problems: []SourceStatus{{Input: "log /a", Problem: "does not exist"}}}
	if err := WriteStatus(dir, in); err != nil {
		t.Fatal(err)
	}
	out, ok, err := ReadStatus(dir)
	if err != nil || !ok || out.PID != 42 || !out.Running || !out.At.Equal(at) || out.Problems[0] != in.Problems[0] || out.AMI != in.AMI {
		t.Errorf("read %+v %v %v", out, ok, err)
	}
}
