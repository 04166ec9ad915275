package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/guard"
)

// guardPolicy is the lab's policy with a guard section.
const guardPolicy = `ssh: {ports: [2222]}
sip:
  hostnames: [pbx.example-secret.net]
  scanners:
    ban_for: 2h
trusted:
  all: [10.9.0.0/16]
guard:
  logs: [/var/log/asterisk/security, "journal:asterisk.service"]
  ami:
    address: 127.0.0.1:5038
    user: sipwall
    secret_file: ami.secret
  findtime: 2m
  maxretry: 3
  bantime: 30m
  bantime_factor: 4
  max_bantime: 48h
  never_ban: [192.0.2.0/24]
  ignore_self: false
  inspect: false
  metrics: "off"
  resolve_every: 1m
  save_every: 2m
`

// captureLive replaces the daemon by a recorder of its settings for the
// duration of the test.
func captureLive(t *testing.T) *guard.Settings {
	t.Helper()
	var got guard.Settings
	old := runDaemon
	runDaemon = func(_ *env, d *guard.Daemon) int {
		got = d.Settings
		return exitOK
	}
	t.Cleanup(func() { runDaemon = old })
	return &got
}

func writeGuardPolicy(t *testing.T, text, secret string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "sipwall.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		if err := os.WriteFile(filepath.Join(dir, "ami.secret"), []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestGuardTakesThePolicysSettings: without flags, live mode runs with the
// policy's guard section: logs (the journal included), AMI account with the
// secret read from secret_file (relative to the policy), thresholds,
// never-ban, inspector, metrics, periods.
func TestGuardTakesThePolicysSettings(t *testing.T) {
	t.Setenv("SIPWALL_AMI_SECRET", "")
	got := captureLive(t)
	pf := writeGuardPolicy(t, guardPolicy, "s3cret\n")
	code, _, stderr := run(t, "guard", "-c", pf, "--state-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	o := *got
	if strings.Join(o.Logs, ",") != "/var/log/asterisk/security,journal:asterisk.service" {
		t.Errorf("logs %q", o.Logs)
	}
	if o.AMI == nil || o.AMI.Addr != "127.0.0.1:5038" || o.AMI.Username != "sipwall" || o.AMI.Secret != "s3cret" {
		t.Errorf("AMI %+v", o.AMI)
	}
	j := o.Jail
	if j.FindTime != 2*time.Minute || j.MaxRetry != 3 || j.BanTime != 30*time.Minute || j.BanFactor != 4 || j.MaxBanTime != 48*time.Hour {
		t.Errorf("jail %+v", j)
	}
	// guard.never_ban, then the trusted networks.
	if len(j.NeverBan) != 2 || j.NeverBan[0] != netip.MustParsePrefix("192.0.2.0/24") || j.NeverBan[1] != netip.MustParsePrefix("10.9.0.0/16") {
		t.Errorf("never-ban %v", j.NeverBan)
	}
	if len(j.Self) != 0 {
		t.Errorf("ignore_self: false, but own addresses are exempt: %v", j.Self)
	}
	if o.Inspect || o.Metrics != "off" || o.ResolveEvery != time.Minute || o.SaveEvery != 2*time.Minute {
		t.Errorf("inspect %v, metrics %q, resolve every %s, save every %s", o.Inspect, o.Metrics, o.ResolveEvery, o.SaveEvery)
	}
}

// TestGuardFlagsOverrideThePolicy: a flag given on the command line wins
// over the policy, a flag not given leaves the policy's value, even when
// the flag's default differs from it.
func TestGuardFlagsOverrideThePolicy(t *testing.T) {
	t.Setenv("SIPWALL_AMI_SECRET", "")
	got := captureLive(t)
	pf := writeGuardPolicy(t, guardPolicy, "s3cret\n")
	other := filepath.Join(t.TempDir(), "other.secret")
	os.WriteFile(other, []byte("flagsecret"), 0o600)
	code, _, stderr := run(t, "guard", "-c", pf, "--state-dir", t.TempDir(),
		"--maxretry", "7", "--log", "/tmp/messages", "--log", "journal:freepbx.service",
		"--metrics", "127.0.0.1:0", "--never-ban", "198.51.100.0/24", "--ignore-self",
		"--no-inspect=false", "--ami", "127.0.0.1:5039", "--ami-secret-file", other, "--save-every", "30s")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	o := *got
	if strings.Join(o.Logs, ",") != "/tmp/messages,journal:freepbx.service" {
		t.Errorf("logs %q: --log replaces guard.logs", o.Logs)
	}
	if o.Jail.MaxRetry != 7 {
		t.Errorf("maxretry %d, want the flag's 7", o.Jail.MaxRetry)
	}
	if o.Jail.FindTime != 2*time.Minute || o.Jail.BanTime != 30*time.Minute {
		t.Errorf("findtime %s, bantime %s: flags not given must keep the policy's", o.Jail.FindTime, o.Jail.BanTime)
	}
	if len(o.Jail.NeverBan) != 2 || o.Jail.NeverBan[0] != netip.MustParsePrefix("198.51.100.0/24") || o.Jail.NeverBan[1] != netip.MustParsePrefix("10.9.0.0/16") {
		t.Errorf("never-ban %v", o.Jail.NeverBan)
	}
	if o.Metrics != "127.0.0.1:0" || !o.Inspect || o.SaveEvery != 30*time.Second || o.ResolveEvery != time.Minute {
		t.Errorf("metrics %q, inspect %v, save every %s, resolve every %s", o.Metrics, o.Inspect, o.SaveEvery, o.ResolveEvery)
	}
	if o.AMI == nil || o.AMI.Addr != "127.0.0.1:5039" || o.AMI.Username != "sipwall" || o.AMI.Secret != "flagsecret" {
		t.Errorf("AMI %+v", o.AMI)
	}

	// The environment's secret wins over the secret file, --ami-secret
	// over both.
	t.Setenv("SIPWALL_AMI_SECRET", "envsecret")
	if code, _, stderr := run(t, "guard", "-c", pf, "--state-dir", t.TempDir()); code != exitOK || got.AMI.Secret != "envsecret" {
		t.Errorf("exit %d, secret %q (%s)", code, got.AMI.Secret, stderr)
	}
	if code, _, stderr := run(t, "guard", "-c", pf, "--state-dir", t.TempDir(), "--ami-secret", "argsecret"); code != exitOK || got.AMI.Secret != "argsecret" {
		t.Errorf("exit %d, secret %q (%s)", code, got.AMI.Secret, stderr)
	}
}

// TestGuardDefaultsWithoutGuardSection: a policy without a guard section
// gets the documented defaults.
func TestGuardDefaultsWithoutGuardSection(t *testing.T) {
	got := captureLive(t)
	code, _, stderr := run(t, "guard", "-c", lab, "--state-dir", t.TempDir(), "--log", "/dev/null")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	o := *got
	if o.Jail.MaxRetry != 5 || o.Jail.FindTime != 10*time.Minute || o.Jail.BanTime != time.Hour || o.Jail.BanFactor != 2 ||
		o.Jail.MaxBanTime != 168*time.Hour || !o.Inspect || o.Metrics != "127.0.0.1:9765" || len(o.Jail.Self) == 0 {
		t.Errorf("defaults: %+v", o)
	}
}

func TestGuardPolicyBadInput(t *testing.T) {
	t.Setenv("SIPWALL_AMI_SECRET", "")
	captureLive(t) // nothing may run
	missing := writeGuardPolicy(t, guardPolicy, "")
	empty := writeGuardPolicy(t, guardPolicy, "\n\n")
	noSecret := writeGuardPolicy(t, strings.Replace(guardPolicy, "    secret_file: ami.secret\n", "", 1), "")
	badGuard := writeGuardPolicy(t, strings.Replace(guardPolicy, "maxretry: 3", "maxretry: 0", 1), "x")
	line := 0
	for i, l := range strings.Split(guardPolicy, "\n") {
		if strings.Contains(l, "secret_file") {
			line = i + 1
		}
	}
	cases := []struct {
		name string
		args []string
		msgs []string
	}{
		{"missing secret file", []string{"-c", missing}, []string{
			missing + ":" + strconv.Itoa(line) + ": guard.ami.secret_file: the AMI secret: open " + filepath.Join(filepath.Dir(missing), "ami.secret"), "no such file"}},
		{"empty secret file", []string{"-c", empty}, []string{"guard.ami.secret_file", "is empty"}},
		{"missing --ami-secret-file", []string{"-c", missing, "--ami-secret-file", "/nonexistent/secret"}, []string{"--ami-secret-file: the AMI secret: open /nonexistent/secret"}},
		{"no secret at all", []string{"-c", noSecret}, []string{"no secret for the AMI account sipwall", "guard.ami.secret_file"}},
		{"bad guard section", []string{"-c", badGuard}, []string{"guard.maxretry: 0 is out of range"}},
		{"missing policy", []string{"-c", filepath.Join(t.TempDir(), "none.yaml")}, []string{"none.yaml"}},
		{"max-bantime below the policy's bantime", []string{"-c", missing, "--max-bantime", "10m"}, []string{"--max-bantime (guard.max_bantime): 10m is shorter than guard.bantime 30m"}},
		{"bad metrics flag", []string{"-c", missing, "--metrics", "everywhere"}, []string{"--metrics"}},
		{"bad journal unit", []string{"-c", missing, "--log", "journal:"}, []string{"not a systemd unit name"}},
		{"negative save period", []string{"-c", missing, "--save-every", "-1s"}, []string{"--save-every (guard.save_every): -1s is out of range (1s to 24h)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, append([]string{"guard", "--state-dir", t.TempDir()}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
			for _, m := range c.msgs {
				if !strings.Contains(stderr, m) {
					t.Errorf("stderr %q lacks %q", stderr, m)
				}
			}
		})
	}
}

// TestGuardScanLogThresholds: --scan-log uses the flags' defaults, or with
// -c the policy's guard thresholds, flags on top.
func TestGuardScanLogThresholds(t *testing.T) {
	log := filepath.Join(t.TempDir(), "security")
	os.WriteFile(log, []byte("[2024-03-01 10:00:00] NOTICE[1234] chan_sip.c: Registration from '<sip:100@pbx>' failed for '203.0.113.5:5060' - Wrong password\n"), 0o644)
	pf := writeGuardPolicy(t, guardPolicy, "s3cret")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"guard", "--scan-log", log}, "Thresholds: 5 failures within 10m0s ban for 1h0m0s (repeat bans x2, at most 168h0m0s)"},
		{[]string{"guard", "--scan-log", "-c", pf, log}, "Thresholds: 3 failures within 2m0s ban for 30m0s (repeat bans x4, at most 48h0m0s)"},
		{[]string{"guard", "--scan-log", "-c", pf, "--maxretry", "9", log}, "Thresholds: 9 failures within 2m0s ban for 30m0s"},
	} {
		code, out, stderr := run(t, c.args...)
		if code != exitOK || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, output %q (%s); want %q", c.args[1:], code, out, stderr, c.want)
		}
	}
}

// TestGuardFlagBounds: every numeric flag has the policy's bounds; a value
// out of them is refused before anything runs, naming the flag and the
// policy key, with exit 2. The same value in the policy file is refused by
// the same check, naming the file's line.
func TestGuardFlagBounds(t *testing.T) {
	captureLive(t) // nothing may run
	pf := writeGuardPolicy(t, guardPolicy, "s3cret")
	cases := []struct {
		flag, value, msg string
	}{
		{"--max-line", "-5", "--max-line (guard.max_line): -5 is out of range (256 to 1048576 bytes)"},
		{"--max-line", "100000000", "--max-line (guard.max_line): 100000000 is out of range"},
		{"--bantime-factor", "1000000000", "--bantime-factor (guard.bantime_factor): 1000000000 is out of range (1 to 100"},
		{"--bantime-factor", "0", "--bantime-factor (guard.bantime_factor): 0 is out of range"},
		{"--maxretry", "-1", "--maxretry (guard.maxretry): -1 is out of range (1 to 1000)"},
		{"--maxretry", "1001", "--maxretry (guard.maxretry): 1001 is out of range"},
		{"--findtime", "0s", "--findtime (guard.findtime): 0s is out of range (1s to 168h)"},
		{"--findtime", "800h", "--findtime (guard.findtime): 800h is out of range"},
		{"--bantime", "-1h", "--bantime (guard.bantime): -1h is out of range"},
		{"--bantime", "9000h", "--bantime (guard.bantime): 9000h is out of range (1s to 596h31m23s)"},
		{"--max-bantime", "9000h", "--max-bantime (guard.max_bantime): 9000h is out of range"},
		{"--poll", "0s", "--poll (guard.poll): 0s is out of range (1ms to 10s)"},
		{"--poll", "1m", "--poll (guard.poll): 1m is out of range"},
		{"--resolve-every", "1s", "--resolve-every (guard.resolve_every): 1s is out of range (10s to 24h)"},
		{"--save-every", "48h", "--save-every (guard.save_every): 48h is out of range (1s to 24h)"},
		{"--metrics", "everywhere", "--metrics (guard.metrics): \"everywhere\" is not an address:port"},
		{"--ipv6-prefix", "8", "--ipv6-prefix (guard.ipv6_prefix): 8 is out of range (16 to 128, or 0 for single addresses)"},
		{"--log", "journal:-x", "--log (guard.logs): \"-x\" is not a systemd unit name"},
	}
	for _, c := range cases {
		for _, mode := range [][]string{{"-c", pf}, {"--scan-log", "/dev/null"}} {
			args := append([]string{"guard", "--state-dir", t.TempDir(), c.flag, c.value}, mode...)
			code, _, stderr := run(t, args...)
			if code != exitUsage || !strings.Contains(stderr, c.msg) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", args[1:], code, stderr, exitUsage, c.msg)
			}
		}
	}
	// Without a readable policy, the flags' problems are named as well.
	code, _, stderr := run(t, "guard", "-c", filepath.Join(t.TempDir(), "none.yaml"), "--max-line", "-5")
	if code != exitUsage || !strings.Contains(stderr, "none.yaml") || !strings.Contains(stderr, "--max-line (guard.max_line)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	// The policy file's value goes through the same bounds.
	bad := writeGuardPolicy(t, guardPolicy+"  max_line: -5\n", "s3cret")
	code, _, stderr = run(t, "guard", "-c", bad, "--state-dir", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, bad+":25: guard.max_line: -5 is out of range (256 to 1048576 bytes)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
