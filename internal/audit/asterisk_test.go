package audit

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// samplesDir holds Asterisk's own sample configuration files, shared by
// every checkout of the project.
const samplesDir = "../../../shared/corpus/asterisk-configs"

// installSamples copies the *.sample files into a fresh directory under
// their installed names, as `make samples` does, and returns it.
func installSamples(t *testing.T) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(samplesDir, "*.conf.sample"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no sample configurations in %s (err %v)", samplesDir, err)
	}
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(n), ".sample")), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// atLeast returns the keys of the findings of severity min or above.
func atLeast(r *Report, root string, min Severity) []string {
	var out []string
	all := keys(r, root, "")
	for i, f := range r.Findings {
		if f.Severity >= min {
			out = append(out, all[i])
		}
	}
	return out
}

func TestAsteriskSamplesAsShipped(t *testing.T) {
	dir := installSamples(t)
	r := runAudit(t, Config{AsteriskDir: dir})
	want := []string{
		"medium iax.guest iax.conf:481",
		"medium modules.unused_listener modules.conf:8",
		"low asterisk.logger_security logger.conf:94",
		"low manager.public_bind manager.conf:26",
		"low modules.unused_listener modules.conf:8",
		"low modules.unused_listener modules.conf:8",
		"low modules.unused_listener modules.conf:8",
		"low modules.unused_listener modules.conf:8",
		"low modules.unused_listener modules.conf:8",
	}
	if diff := cmp.Diff(want, atLeast(r, dir, Low)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	// chan_iax2 has iax.conf, whose only user is the sample's guest: it
	// listens for nobody. The others have no configuration file at all.
	var medium, low []string
	for _, f := range r.Findings {
		if f.Check != "modules.unused_listener" {
			continue
		}
		mod, _, _ := strings.Cut(f.Found, " ")
		if f.Severity == Medium {
			medium = append(medium, mod)
		} else {
			low = append(low, mod)
		}
	}
	slices.Sort(low)
	if diff := cmp.Diff([]string{"chan_iax2.so"}, medium); diff != "" {
		t.Errorf("medium modules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"chan_mgcp.so", "chan_ooh323.so", "chan_skinny.so", "chan_unistim.so", "pbx_dundi.so"}, low); diff != "" {
		t.Errorf("low modules (-want +got):\n%s", diff)
	}
	if f := find(t, r, "iax.guest", "iax.conf:481"); !strings.Contains(f.Found, `"public"`) {
		t.Errorf("iax.guest should name the guest's context: %q", f.Found)
	}
	if f := find(t, r, "modules.unused_listener", "modules.conf:8"); !strings.Contains(f.Fix, "noload => ") {
		t.Errorf("the fix should be a noload line: %q", f.Fix)
	}
	// The manager sample is disabled: its 0.0.0.0 binding is only latent.
	if f := find(t, r, "manager.public_bind", "manager.conf:26"); !strings.Contains(f.Found, "disabled") {
		t.Errorf("manager finding should say the AMI is disabled: %q", f.Found)
	}
	if r.HasHigh() {
		t.Error("the shipped samples have no high finding (AMI and HTTP are disabled or on localhost)")
	}
}

// uncommentExamples enables the example sections of pjsip.conf.sample (its
// first part, up to the ACL examples), as users do who start from it.
func uncommentExamples(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, "pjsip.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`^;(\[[^\]]+\]|[a-z_]+=)`)
	lines := strings.Split(string(b), "\n")
	inExamples := false
	for i, l := range lines {
		switch {
		case strings.Contains(l, "EXAMPLE TRANSPORTS"):
			inExamples = true
		case strings.Contains(l, "EXAMPLE ACL CONFIGURATION"):
			inExamples = false
		case inExamples && setting.MatchString(l):
			lines[i] = l[1:]
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAsteriskPJSIPSampleExamplesEnabled(t *testing.T) {
	dir := installSamples(t)
	uncommentExamples(t, dir)
	r := runAudit(t, Config{AsteriskDir: dir})
	got := keys(r, dir, "pjsip.")
	want := []string{
		"high pjsip.endpoint_no_auth pjsip.conf:269",       // [mytrunk]: identified by From user, no auth
		"high pjsip.endpoint_no_auth pjsip.conf:441",       // [default_outbound_endpoint]
		"high pjsip.weak_password pjsip.conf:315",          // 7000/7000
		"high pjsip.weak_password pjsip.conf:383",          // 6001/6001
		"high pjsip.weak_password pjsip.conf:428",          // 6002/6002
		"medium pjsip.no_acl pjsip.conf:0",                 // no type=acl section
		"low pjsip.tls_method pjsip.conf:159",              // method=tlsv1
		"low pjsip.tls_method pjsip.conf:194",              // method=tlsv1
		"low pjsip.transport_all_addresses pjsip.conf:131", // transport-udp
		"low pjsip.transport_all_addresses pjsip.conf:138", // transport-udp-nat
		"low pjsip.transport_all_addresses pjsip.conf:148", // transport-udp-ipv6 (::)
		"low pjsip.transport_all_addresses pjsip.conf:155", // transport-tls
		"low pjsip.transport_all_addresses pjsip.conf:179", // transport-tcp
		"low pjsip.transport_all_addresses pjsip.conf:190", // transport-tls (keepalive example)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pjsip findings (-want +got):\n%s", diff)
	}
	if f := find(t, r, "pjsip.weak_password", "pjsip.conf:383"); !strings.Contains(f.Found, "equals the account name") || strings.Contains(f.Found, "6001\"") {
		t.Errorf("weak password finding: %q", f.Found)
	}
	if f := find(t, r, "pjsip.transport_all_addresses", "pjsip.conf:155"); !strings.Contains(f.Found, "TLS") || !strings.Contains(f.Found, "5061") {
		t.Errorf("TLS transport finding should name TLS and port 5061: %q", f.Found)
	}
}

func TestAsteriskHardenedHasNoFindings(t *testing.T) {
	dir := "testdata/asterisk/hardened"
	r := runAudit(t, Config{AsteriskDir: dir})
	if got := atLeast(r, dir, Low); len(got) != 0 {
		t.Errorf("hardened configuration has findings:\n%s", strings.Join(got, "\n"))
	}
	// None of the checks the shipped samples trigger fire here.
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Check, "asterisk.") {
			t.Errorf("unexpected %s: %s", f.Check, f.Found)
		}
	}
}

// TestAsteriskHardenedSamples applies the article's advice to the shipped
// samples and checks that their findings go away.
func TestAsteriskHardenedSamples(t *testing.T) {
	dir := installSamples(t)
	mods := filepath.Join(dir, "modules.conf")
	b, err := os.ReadFile(mods)
	if err != nil {
		t.Fatal(err)
	}
	extra := "\n; the article's list\nnoload => chan_skinny.so\nnoload => chan_mgcp.so\nnoload => pbx_dundi.so\n" +
		"noload => chan_unistim.so\nnoload => chan_ooh323.so\nnoload => chan_iax2.so\n"
	if err := os.WriteFile(mods, append(b, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	mgr := filepath.Join(dir, "manager.conf")
	b, err = os.ReadFile(mgr)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "bindaddr = 0.0.0.0", "bindaddr = 127.0.0.1", 1))
	if err := os.WriteFile(mgr, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The security channel, for sipwall guard.
	logger := filepath.Join(dir, "logger.conf")
	b, err = os.ReadFile(logger)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), ";security.log => security", "security.log => security", 1))
	if err := os.WriteFile(logger, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runAudit(t, Config{AsteriskDir: dir})
	if got := atLeast(r, dir, Low); len(got) != 0 {
		t.Errorf("hardened samples have findings:\n%s", strings.Join(got, "\n"))
	}
}

func TestAsteriskLegacyChanSIP(t *testing.T) {
	dir := "testdata/asterisk/legacy"
	r := runAudit(t, Config{AsteriskDir: dir})
	want := []string{
		"high http.public_bind http.conf:3",
		"high http.public_bind http.conf:6",
		"high manager.public_bind manager.conf:4",
		"high manager.weak_secret manager.conf:7",
		"high sip.allowguest sip.conf:1",
		"high sip.no_secret sip.conf:13",
		"high sip.weak_secret sip.conf:10",
		"medium manager.permit_wide manager.conf:8",
		"medium manager.permit_wide manager.conf:15",
		"medium modules.unused_listener modules.conf:7",
		"medium sip.alwaysauthreject sip.conf:3",
		"medium sip.peer_acl_wide sip.conf:17",
		"medium sip.peer_acl_wide sip.conf:25",
		"medium sip.peer_no_acl sip.conf:7",
		"low asterisk.logger_security logger.conf:0",
		"low sip.bind_all_addresses sip.conf:4",
		"low sip.no_call_limit sip.conf:7",
	}
	if diff := cmp.Diff(want, atLeast(r, dir, Low)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ check, where, want string }{
		{"manager.weak_secret", "manager.conf:7", `"amp111"`},
		{"manager.permit_wide", "manager.conf:8", "no deny=0.0.0.0/0.0.0.0"},
		{"manager.permit_wide", "manager.conf:15", "203.0.0.0/16"},
		{"sip.allowguest", "sip.conf:1", "default is yes"},
		{"sip.weak_secret", "sip.conf:10", "equals the account name"},
		{"modules.unused_listener", "modules.conf:7", "chan_ooh323.so is loaded (load=chan_ooh323.so)"},
	} {
		if f := find(t, r, tc.check, tc.where); !strings.Contains(f.Found, tc.want) {
			t.Errorf("%s at %s: found %q, want it to contain %q", tc.check, tc.where, f.Found, tc.want)
		}
	}
	if !r.HasHigh() {
		t.Error("a public AMI with a sample secret must be a high finding")
	}
}

func TestAsteriskBrokenInput(t *testing.T) {
	dir := "testdata/asterisk/broken"
	r := runAudit(t, Config{AsteriskDir: dir})
	want := []string{
		"high manager.public_bind manager.conf:3",
		"medium asterisk.include_missing pjsip.conf:7",
		"medium asterisk.syntax acl.conf:3",
		"medium asterisk.syntax acl.conf:4",
		"medium asterisk.syntax modules.conf:3",
		"medium asterisk.syntax pjsip.conf:1",
		"medium asterisk.syntax pjsip.conf:2",
		"medium asterisk.syntax pjsip.conf:3",
		"medium asterisk.syntax pjsip.conf:4",
		"medium asterisk.syntax pjsip.conf:10",
		"medium asterisk.syntax pjsip.conf:13",
		"medium pjsip.no_acl pjsip.conf:0",
		"low asterisk.logger_security logger.conf:0",
		// What could be parsed is still audited: autoload=yes loads the
		// listeners that have no noload line.
		"low modules.unused_listener modules.conf:2",
		"low modules.unused_listener modules.conf:2",
		"low modules.unused_listener modules.conf:2",
		"low modules.unused_listener modules.conf:2",
		"low modules.unused_listener modules.conf:2",
	}
	if diff := cmp.Diff(want, atLeast(r, dir, Low)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	find(t, r, "asterisk.exec", "pjsip.conf:9")
	for _, tc := range []struct{ where, want string }{
		{"modules.conf:3", "no '='"},
		{"pjsip.conf:2", "no closing ]"},
		{"pjsip.conf:4", "(missing-template)"},
		{"pjsip.conf:10", "#frobnicate"},
		{"pjsip.conf:13", "not closed"},
		{"acl.conf:4", "not contiguous"},
	} {
		if f := find(t, r, "asterisk.syntax", tc.where); !strings.Contains(f.Found, tc.want) {
			t.Errorf("syntax at %s: %q does not mention %q", tc.where, f.Found, tc.want)
		}
	}
}

func TestAsteriskUnreadableFile(t *testing.T) {
	dir := "testdata/asterisk/legacy"
	path := filepath.Join(dir, "manager.conf")
	r := runAudit(t, Config{AsteriskDir: dir, Files: failingFiles{fail: map[string]error{path: os.ErrPermission}}})
	f := find(t, r, "input.unreadable", "manager.conf:0")
	if f.Severity != Medium || !strings.Contains(f.Found, "permission denied") {
		t.Errorf("unreadable finding: %+v", f)
	}
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Check, "manager.") {
			t.Errorf("manager.conf was unreadable, yet %s was reported", f.Check)
		}
	}
	// The other files are still audited.
	find(t, r, "sip.allowguest", "sip.conf:1")
}

func TestAsteriskDirMissing(t *testing.T) {
	r := runAudit(t, Config{})
	f := find(t, r, "asterisk.not_found", "asterisk:0")
	if f.Severity != Info {
		t.Errorf("missing Asterisk directory should be info, got %s", f.Severity)
	}
}

func TestAsteriskUnreadableInclude(t *testing.T) {
	dir := "testdata/asterisk/hardened"
	inc := filepath.Join(dir, "pjsip_endpoints.conf")
	r := runAudit(t, Config{AsteriskDir: dir, Files: failingFiles{fail: map[string]error{inc: os.ErrPermission}}})
	want := []string{"medium input.unreadable pjsip_endpoints.conf:0"}
	if diff := cmp.Diff(want, atLeast(r, dir, Low)); diff != "" {
		t.Errorf("an unreadable #include is reported as unreadable, not missing (-want +got):\n%s", diff)
	}
}
