package policy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const minimal = "ssh:\n  ports: [2222]\nsip:\n  hostnames: [pbx.example-secret.net]\n"

func TestMinimalPolicyGetsTheArticleValues(t *testing.T) {
	p, err := Parse("p.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if p.SIP.Mode != ModeHostname || p.Defaults.Input != "drop" || p.Defaults.Forward != "drop" || p.Defaults.Output != "accept" {
		t.Errorf("mode/defaults = %q %+v", p.SIP.Mode, p.Defaults)
	}
	if diff := cmp.Diff([]int{0, 3, 4, 8, 11}, p.ICMP.Types); diff != "" {
		t.Errorf("icmp types: %s", diff)
	}
	if got := p.SIP.RateLimits.Register; got.Count != 20 || got.Per.Duration != 10*time.Second {
		t.Errorf("register limit = %+v", got)
	}
	if got := p.SIP.RateLimits.Invite; got.Count != 20 || got.Per.Duration != 5*time.Second {
		t.Errorf("invite limit = %+v", got)
	}
	if p.Traps.BanFor.Duration != 10*time.Minute || p.Spoofing.SynRate.Count != 10 {
		t.Errorf("trap ban %v, syn rate %+v", p.Traps.BanFor, p.Spoofing.SynRate)
	}
	var sigs []string
	for _, s := range p.SIP.Scanners.Signatures {
		sigs = append(sigs, s.Match)
		if s.IgnoreCase != (s.Match == "sipvicious") {
			t.Errorf("signature %q icase = %v", s.Match, s.IgnoreCase)
		}
	}
	want := []string{"sundayddr", "sipsak", "sipvicious", "friendly-scanner", "iWar", "sip-scan", "sipcli", "eyeBeam", "VaxSIPUserAgent", "sip:nm@nm"}
	if diff := cmp.Diff(want, sigs); diff != "" {
		t.Errorf("signatures: %s", diff)
	}
	actions := map[int]string{}
	for _, tp := range p.Traps.Ports {
		actions[tp.Port] = tp.Action
	}
	wantTraps := map[int]string{21: "drop", 22: "ban", 23: "ban", 25: "ban", 80: "drop", 443: "drop", 1433: "ban", 3128: "ban", 3306: "ban", 3389: "ban", 4899: "ban", 5900: "ban"}
	if diff := cmp.Diff(wantTraps, actions); diff != "" {
		t.Errorf("traps: %s", diff)
	}
	if p.Lists.Capacity < 1000000 {
		t.Errorf("list capacity %d < 1,000,000", p.Lists.Capacity)
	}
	if !p.IPv6 {
		t.Error("IPv6 must be protected by default")
	}
	if g := p.Guard; g.MaxRetry != 5 || g.FindTime.Duration != 10*time.Minute || g.BanTime.Duration != time.Hour || !g.Inspect || g.Metrics != "127.0.0.1:9765" {
		t.Errorf("guard defaults = %+v", g)
	}
}

func TestTrapPortsMergeIntoDefaults(t *testing.T) {
	p, err := Parse("p.yaml", []byte(minimal+"traps:\n  ports: {25: accept, 3306: accept, 21: none, 8088: ban}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, tp := range p.Traps.Ports {
		got[tp.Port] = tp.Action
	}
	if got[25] != "accept" || got[3306] != "accept" || got[8088] != "ban" || got[23] != "ban" {
		t.Errorf("merged traps = %v", got)
	}
	if _, ok := got[21]; ok {
		t.Errorf("port 21 should be removed: %v", got)
	}
}

func TestExemptSplitsABogon(t *testing.T) {
	p, err := Parse("p.yaml", []byte(minimal+"spoofing:\n  exempt: [10.1.2.0/24, 192.168.0.0/16]\n"))
	if err != nil {
		t.Fatal(err)
	}
	bogons := p.Bogons()
	in := func(s string) bool {
		a := netip.MustParseAddr(s)
		for _, b := range bogons {
			if b.Contains(a) {
				return true
			}
		}
		return false
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": false, "10.1.3.1": true, "10.0.0.1": true, "10.255.255.255": true, "10.1.1.255": true,
		"192.168.1.1": false, "172.16.0.1": true, "203.0.113.5": true, "8.8.8.8": false,
	} {
		if got := in(addr); got != want {
			t.Errorf("%s is bogon = %v, want %v", addr, got, want)
		}
	}
}

func TestBadPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", minimal + "sip_ports: [5060]\n", "p.yaml:5: sip_ports: unknown key"},
		{"unknown nested key", "ssh:\n  ports: [22]\n  port: 22\nsip:\n  hostnames: [a.example.net]\n", "p.yaml:3: ssh.port: unknown key (known keys here: ports)"},
		{"wrong type", minimal + "dhcp: maybe\n", "p.yaml:5: dhcp: expected true or false, found \"maybe\""},
		{"list expected", minimal + "icmp:\n  types: {a: 1}\n", "p.yaml:6: icmp.types: expected a list"},
		{"bad port", "ssh:\n  ports: [70000]\nsip:\n  hostnames: [a.example.net]\n", "p.yaml:2: ssh.ports[0]: \"70000\" is not a port"},
		{"reversed range", minimal + "sip:\n  rtp_ports: [20000-10000]\n", "key given twice"},
		{"reversed range alone", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  rtp_ports: [20000-10000]\n", "p.yaml:4: sip.rtp_ports[0]: port range \"20000-10000\" ends before it starts"},
		{"bad address", minimal + "trusted:\n  all: [10.0.0.300]\n", "p.yaml:6: trusted.all[0]: \"10.0.0.300\" is not an address"},
		{"host bits", minimal + "trusted:\n  sip: [10.1.2.3/8]\n", "did you mean 10.0.0.0/8?"},
		{"bad duration", minimal + "traps:\n  ban_for: 10 minutes\n", "p.yaml:6: traps.ban_for: \"10 minutes\" is not a duration"},
		{"sub-second", minimal + "traps:\n  ban_for: 500ms\n", "shorter than the kernel's 1 s resolution"},
		{"hostname mode without hostname", "ssh: {ports: [22]}\n", "p.yaml: sip.hostnames: mode hostname needs at least one secret hostname"},
		{"unknown mode", "ssh: {ports: [22]}\nsip:\n  mode: paranoid\n", "p.yaml:3: sip.mode: \"paranoid\" is not a mode"},
		{"bad trap action", minimal + "traps:\n  ports: {23: explode}\n", "action \"explode\" is not one of ban, drop, accept, none"},
		{"bad interface", minimal + "interfaces:\n  public: [\"eth 0\"]\n", "p.yaml:6: interfaces.public[0]: \"eth 0\" is not an interface name"},
		{"syntax error", "ssh: [\n", "p.yaml:1: did not find expected node content"},
		{"rate without period", minimal + "sip:\n  rate_limits:\n    register: {count: 5, per: 0}\n", "key given twice"},
		{"bad signature key", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  scanners:\n    signatures: [{match: x, case: true}]\n", "p.yaml:5: sip.scanners.signatures[0]: unknown key \"case\""},
		{"negative capacity", minimal + "lists:\n  capacity: -1\n", "p.yaml:6: lists.capacity: -1 is out of range"},
		{"guard maxretry", minimal + "guard:\n  maxretry: 0\n", "p.yaml:6: guard.maxretry: 0 is out of range"},
		{"guard ipv6_prefix", minimal + "guard:\n  ipv6_prefix: 129\n", "p.yaml:6: guard.ipv6_prefix: 129 is out of range"},
		{"guard metrics", minimal + "guard:\n  metrics: everywhere\n", "p.yaml:6: guard.metrics: \"everywhere\" is not an address:port"},
		{"guard bantimes", minimal + "guard:\n  bantime: 2h\n  max_bantime: 1h\n", "p.yaml:7: guard.max_bantime: 1h is shorter than guard.bantime 2h"},
		{"guard ami", minimal + "guard:\n  ami: {address: localhost}\n", "guard.ami.address: \"localhost\" is not host:port"},
		{"guard ami user", minimal + "guard:\n  ami: {address: \"127.0.0.1:5038\"}\n", "p.yaml:6: guard.ami.user: an AMI address (guard.ami.address) needs a user"},
		{"guard bantime beyond the kernel's", minimal + "guard:\n  bantime: 30d\n  max_bantime: 30d\n", "p.yaml:6: guard.bantime: 720h is out of range (1s to 596h31m23s)"},
		{"guard bantime factor", minimal + "guard:\n  bantime_factor: 1000000000\n", "p.yaml:6: guard.bantime_factor: 1000000000 is out of range (1 to 100"},
		{"guard findtime", minimal + "guard:\n  findtime: forever\n", "p.yaml:6: guard.findtime: 0s is out of range (1s to 168h)"},
		{"guard max_line", minimal + "guard:\n  max_line: -5\n", "p.yaml:6: guard.max_line: -5 is out of range (256 to 1048576 bytes)"},
		{"guard poll", minimal + "guard:\n  poll: 1h\n", "p.yaml:6: guard.poll: 1h is out of range (1ms to 10s)"},
		{"guard poll syntax", minimal + "guard:\n  poll: often\n", "p.yaml:6: guard.poll: \"often\" is not a duration"},
		{"guard journal unit", minimal + "guard:\n  logs: [\"journal:bad unit\"]\n", "p.yaml:6: guard.logs[0]: \"bad unit\" is not a systemd unit name"},
		{"crowdsec url", minimal + "crowdsec:\n  url: 127.0.0.1:8080\n  key_file: k\n", "p.yaml:6: crowdsec.url: \"127.0.0.1:8080\" is not an http(s) address"},
		{"crowdsec key", minimal + "crowdsec:\n  url: http://127.0.0.1:8080\n", "crowdsec.key_file: the LAPI needs the bouncer's API key"},
		{"crowdsec watcher", minimal + "crowdsec:\n  url: http://127.0.0.1:8080\n  key_file: k\n  machine_id: pbx1\n", "p.yaml:8: crowdsec.machine_id: machine_id and password_file go together"},
		{"crowdsec scope", minimal + "crowdsec:\n  url: http://127.0.0.1:8080\n  key_file: k\n  scopes: [country]\n", "p.yaml:8: crowdsec.scopes[0]: \"country\" is not a scope"},
		{"crowdsec pull", minimal + "crowdsec:\n  url: http://127.0.0.1:8080\n  key_file: k\n  pull_every: 1ms\n", "crowdsec.pull_every: 1ms is out of range"},
		{"crowdsec without url", minimal + "crowdsec:\n  key_file: k\n", "crowdsec.url: the crowdsec section needs the LAPI's url"},
		{"feed name", minimal + "feeds:\n  - {name: VoIPBL, url: http://x/}\n", "p.yaml:6: feeds[0].name: \"VoIPBL\" is not a feed name"},
		{"feed twice", minimal + "feeds:\n  - {name: a, url: /x}\n  - {name: a, url: /y}\n", "p.yaml:7: feeds[1].name: a names two feeds"},
		{"feed format", minimal + "feeds:\n  - {name: a, url: /x, format: csv}\n", "feeds[0].format: \"csv\" is not a feed format"},
		{"feed apiban key", minimal + "feeds:\n  - {name: a, url: https://apiban.org/stable, format: apiban}\n", "feeds[0].key_file: APIBan needs its API key"},
		{"feed every", minimal + "feeds:\n  - {name: a, url: /x, every: 1s}\n", "feeds[0].every: 1s is out of range"},
		{"answers without period", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  answers:\n    auth_failures: {count: 10}\n", "p.yaml:5: sip.answers.auth_failures.per: a rate needs a period"},
		{"answers count", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  answers:\n    not_found: {count: -1, per: 1m}\n", "p.yaml:5: sip.answers.not_found.count: -1 is out of range"},
		{"answers ban forever", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  answers:\n    auth_failures: {count: 10, per: 1m}\n    ban_for: forever\n", "p.yaml:6: sip.answers.ban_for: a ban by answers needs a duration"},
		{"answers unknown key", "ssh: {ports: [22]}\nsip:\n  hostnames: [a.example.net]\n  answers:\n    auth_failure: {count: 10, per: 1m}\n", "p.yaml:5: sip.answers.auth_failure: unknown key (known keys here: auth_failures, ban_for, not_found)"},
		{"feed url", minimal + "feeds:\n  - {name: a, url: \"ftp://x/list\"}\n", "feeds[0].url: \"ftp://x/list\" is not an http(s) address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := Parse("p.yaml", []byte("ssh:\n  ports: [0]\nsip:\n  mode: nope\nfoo: 1\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"p.yaml:2: ssh.ports[0]", "p.yaml:5: foo: unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: cannot read policy: no such file or directory") {
		t.Errorf("err = %v", err)
	}
}

func TestExampleLabPolicyLoads(t *testing.T) {
	p, err := LoadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.SSH.Ports[0].From != 2222 || p.SIP.Hostnames[0] != "pbx.example-secret.net" {
		t.Errorf("lab policy: ssh %v hostnames %v", p.SSH.Ports, p.SIP.Hostnames)
	}
	for _, b := range p.Bogons() {
		for _, a := range []string{"192.0.2.10", "198.51.100.21", "203.0.113.11", "2001:db8:10::10"} {
			if b.Contains(netip.MustParseAddr(a)) {
				t.Errorf("lab address %s is treated as a bogon (%s)", a, b)
			}
		}
	}
	if _, err := os.Stat("../../examples/lab.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestLint(t *testing.T) {
	find := func(fs []Finding, sev Severity, key, text string) bool {
		for _, f := range fs {
			if f.Severity == sev && f.Key == key && strings.Contains(f.Message, text) {
				return true
			}
		}
		return false
	}
	p, err := Parse("p.yaml", []byte("sip:\n  hostnames: [pbx]\n  scanners:\n    signatures: [eyeBeam, PBX, {match: zoiper, icase: true}]\n  rtp_ports: [5070-5090]\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := p.Lint(HostFacts{IPv6: true, SSHServerPort: 22})
	for _, c := range []struct {
		sev       Severity
		key, text string
	}{
		{SevError, "ssh.ports", "locks you out"},
		{SevError, "ssh.ports", "arrives on port 22"},
		{SevWarning, "sip.scanners.signatures[0]", "eyeBeam"},
		{SevWarning, "sip.scanners.signatures[1]", "PBX"},
		{SevWarning, "sip.scanners.signatures[2]", "Zoiper"},
		{SevWarning, "sip.hostnames[0]", "easy to guess"},
		{SevWarning, "sip.rtp_ports", "overlaps sip.udp_ports"},
	} {
		if !find(fs, c.sev, c.key, c.text) {
			t.Errorf("missing %s %s %q in\n%v", c.sev, c.key, c.text, fs)
		}
	}
	if !HasErrors(fs) {
		t.Error("HasErrors = false")
	}
	ok, err := Parse("p.yaml", []byte(minimal+"sip:\n  scanners:\n    signatures: [friendly-scanner]\n"))
	if err == nil {
		t.Fatalf("duplicate sip key accepted: %+v", ok)
	}
	clean, err := Parse("p.yaml", []byte("ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\n  scanners:\n    signatures: [friendly-scanner, sipvicious]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fs := clean.Lint(HostFacts{IPv6: true, SSHServerPort: 2222}); len(fs) != 0 {
		t.Errorf("clean policy has findings: %v", fs)
	}
	v4only, _ := Parse("p.yaml", []byte(minimal+"ipv6: false\n"))
	if !find(v4only.Lint(HostFacts{IPv6: true}), SevWarning, "ipv6", "every IPv6 port is open") {
		t.Error("no IPv6 warning")
	}
}

// TestGuardSectionFromFlags: values written onto the guard section by
// command-line flags go through the same checks, and their errors name the
// flag and the key instead of a line of the file.
func TestGuardSectionFromFlags(t *testing.T) {
	p, err := Parse("p.yaml", []byte(minimal+"guard:\n  bantime: 2h\n  max_bantime: 4h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("a loaded policy fails Validate: %v", err)
	}
	p.Guard.MaxLine = -5
	p.SetByFlag("guard.max_line", "--max-line")
	p.Guard.BanTime.Duration = 5 * time.Hour
	p.SetByFlag("guard.bantime", "--bantime")
	err = p.Validate()
	for _, want := range []string{
		"--max-line (guard.max_line): -5 is out of range (256 to 1048576 bytes)",
		"p.yaml:7: guard.max_bantime: 4h is shorter than --bantime 5h",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if got := FlagErrors(err); len(got) != 1 || !strings.Contains(got[0].Error(), "--max-line") {
		t.Errorf("FlagErrors = %v", got)
	}
	if w := p.Where("guard.bantime"); w != "--bantime" {
		t.Errorf("Where(guard.bantime) = %q", w)
	}
	if w := p.Where("guard.max_bantime"); w != "p.yaml:7: guard.max_bantime" {
		t.Errorf("Where(guard.max_bantime) = %q", w)
	}
	// The guard section alone, for a command without a policy file.
	d := Default()
	d.Guard.BanTimeFactor = 1000000000
	d.SetByFlag("guard.bantime_factor", "--bantime-factor")
	if err := d.ValidateGuard(); err == nil || !strings.Contains(err.Error(), "--bantime-factor (guard.bantime_factor): 1000000000 is out of range") {
		t.Errorf("ValidateGuard: %v", err)
	}
	if err := Default().ValidateGuard(); err != nil {
		t.Errorf("the defaults fail: %v", err)
	}
}

func TestAnswersLint(t *testing.T) {
	p, err := Parse("p.yaml", []byte(minimal+"  answers:\n    auth_failures: {count: 2, per: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.SIP.Answers.BanFor.Duration != time.Hour || p.SIP.Answers.NotFound.Count != 0 {
		t.Errorf("defaults: ban_for %v, not_found %+v", p.SIP.Answers.BanFor, p.SIP.Answers.NotFound)
	}
	var found []string
	for _, f := range p.Lint(HostFacts{}) {
		if strings.HasPrefix(f.Key, "sip.answers") {
			found = append(found, f.String())
		}
	}
	want := []string{
		"p.yaml:6: warning: sip.answers.auth_failures.count: 2 failure answers per 1h bans a phone that re-registers with one challenge, or that mistypes a password once: use 10 or more",
		"p.yaml:5: info: sip.answers: answers are counted per remote address: phones behind one NAT address share it, so put an office's address in trusted.sip or the allowed list",
	}
	if strings.Join(found, "\n") != strings.Join(want, "\n") {
		t.Errorf("lint:\n%s\nwant:\n%s", strings.Join(found, "\n"), strings.Join(want, "\n"))
	}
	p, _ = Parse("p.yaml", []byte(minimal))
	if p.SIP.Answers.Enabled() {
		t.Error("answers are on by default")
	}
}
