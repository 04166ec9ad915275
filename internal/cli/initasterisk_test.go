package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/policy"
)

// freePBXDir is a FreePBX-style Asterisk configuration with a trunk by
// address (carrier-ip) and one by name (carrier-name).
const freePBXDir = "../audit/testdata/asterisk/freepbx"

// initFromAsterisk runs init --asterisk-dir dir and loads the written policy.
func initFromAsterisk(t *testing.T, dir string, extra ...string) (*policy.Policy, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sipwall.yaml")
	args := append([]string{"init", "-o", out, "--sshd-config", "/dev/null", "--asterisk-dir", dir}, extra...)
	code, _, errs := run(t, args...)
	if code != exitOK {
		t.Fatalf("init: exit %d\n%s", code, errs)
	}
	p, err := policy.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return p, errs
}

func portList(ps []policy.Port) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func prefixStrings(ps []policy.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestInitFromFreePBX reads a FreePBX-style configuration (freePBXDir:
// pjsip.*.conf, sip_*.conf, iax_general*.conf, rtp.conf, http.conf) with a
// trunk by address and a trunk by name, and checks the written policy.
func TestInitFromFreePBX(t *testing.T) {
	p, errs := initFromAsterisk(t, freePBXDir, "--hostname", "pbx-7f3k.example.net")
	if p.SIP.Mode != policy.ModeHostname {
		t.Errorf("mode %s", p.SIP.Mode)
	}
	// pjsip UDP and TCP on 5160, TLS 5061, chan_sip UDP 5060, WSS on the
	// HTTP server's TLS port 8089; the transport bound to 127.0.0.1 is left out.
	for _, c := range []struct {
		key       string
		got, want []string
	}{
		{"udp_ports", portList(p.SIP.UDPPorts), []string{"5060", "5160"}},
		{"tcp_ports", portList(p.SIP.TCPPorts), []string{"5160"}},
		{"tls_ports", portList(p.SIP.TLSPorts), []string{"5061", "8089"}},
		{"rtp_ports", portList(p.SIP.RTPPorts), []string{"16384-32767"}},
		{"accept.udp (IAX2)", portList(p.Extra.UDP), []string{"4569"}},
		// The trunk by address: its aor contact and identify matches.
		{"trusted.sip", prefixStrings(p.Trusted.SIP), []string{"192.0.2.40/32", "192.0.2.41/32", "198.18.7.0/24"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	// The trunk by name: identify match, aor contact, registration
	// server_uri and outbound_proxy; chan_sip's register line and host=.
	var hosts []string
	for _, h := range p.Trusted.Hosts {
		if h.Access != "sip" {
			t.Errorf("trusted host %s has access %s, want sip", h.Name, h.Access)
		}
		hosts = append(hosts, h.Name)
	}
	if want := []string{"sip.carrier.example", "edge.carrier.example", "legacy.carrier.example"}; !slices.Equal(hosts, want) {
		t.Errorf("trusted.hosts = %v, want %v", hosts, want)
	}
	if len(p.Trusted.All) != 0 {
		t.Errorf("trusted.all = %v: a trunk is trusted for SIP only", p.Trusted.All)
	}
	if !strings.Contains(errs, "trusting trunk carrier-ip: 192.0.2.40") || !strings.Contains(errs, "found http WSS transport [general] on port 8089") {
		t.Errorf("init does not say what it found:\n%s", errs)
	}
	// The phone's dynamic chan_sip peer is not a trunk.
	for _, pf := range p.Trusted.SIP {
		if pf.Prefix.Contains(netip.MustParseAddr("192.0.2.77")) {
			t.Error("the IAX2 peer was trusted for SIP")
		}
	}
}

// TestInitFromAsteriskSamples reads Asterisk's sample configuration (the
// corpus' *.conf.sample installed as make samples does): no SIP transport
// is active, rtp.conf is absent, iax.conf has a guest user.
func TestInitFromAsteriskSamples(t *testing.T) {
	src := "../../../shared/corpus/asterisk-configs"
	samples, err := filepath.Glob(filepath.Join(src, "*.conf.sample"))
	if err != nil || len(samples) == 0 {
		t.Fatalf("no sample configuration in %s: %v", src, err)
	}
	dir := t.TempDir()
	for _, s := range samples {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(s), ".sample")), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, errs := initFromAsterisk(t, dir)
	def := policy.Default()
	if !slices.Equal(portList(p.SIP.UDPPorts), portList(def.SIP.UDPPorts)) {
		t.Errorf("udp_ports = %v: without a transport the defaults are kept", p.SIP.UDPPorts)
	}
	if !strings.Contains(errs, "no SIP transport found") {
		t.Errorf("init does not warn that no transport was found:\n%s", errs)
	}
	if got := portList(p.SIP.RTPPorts); !slices.Equal(got, []string{"5000-31000"}) {
		t.Errorf("rtp_ports = %v, want Asterisk's default 5000-31000", got)
	}
	if got := portList(p.Extra.UDP); !slices.Equal(got, []string{"4569"}) {
		t.Errorf("accept.udp = %v, want IAX2's 4569 (iax.conf.sample defines [guest])", got)
	}
	if len(p.Trusted.SIP)+len(p.Trusted.Hosts) != 0 {
		t.Errorf("trusted %v %v: the samples configure no trunk", p.Trusted.SIP, p.Trusted.Hosts)
	}
}

// TestInitAsteriskDirMissing: a directory that cannot be read is bad input.
func TestInitAsteriskDirMissing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.yaml")
	code, _, errs := run(t, "init", "-o", out, "--asterisk-dir", "/nonexistent/asterisk")
	if code != exitUsage || !strings.Contains(errs, "/nonexistent/asterisk") {
		t.Errorf("exit %d, %q", code, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a policy was written")
	}
}

// TestCheckWarnsAboutThePBX: check compares the policy with the Asterisk
// configuration: the policy written by init covers everything; the
// default policy misses transports, the RTP range, IAX2 and both trunks.
func TestCheckWarnsAboutThePBX(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.yaml")
	if code, _, errs := run(t, "init", "-o", p, "--sshd-config", "/dev/null", "--asterisk-dir", freePBXDir, "--hostname", "pbx-7f3k.example.net"); code != exitOK {
		t.Fatalf("init: %d %s", code, errs)
	}
	// (The trunk's names do not resolve here, so compiling fails: --force.)
	_, out, errs := run(t, "check", "-c", p, "--asterisk-dir", freePBXDir, "--force")
	if strings.Contains(out, "policy.") || !strings.Contains(out, "trusted.hosts[0].name") {
		t.Errorf("check warns about the policy init wrote from the same configuration, or does not try to resolve its hosts:\n%s%s", out, errs)
	}
	bare := filepath.Join(t.TempDir(), "bare.yaml")
	if err := os.WriteFile(bare, []byte("ssh: {ports: [22]}\nsip: {mode: hostname, hostnames: [pbx-7f3k.example.net]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "check", "-c", bare, "--asterisk-dir", freePBXDir)
	if code != exitOK {
		t.Errorf("check: exit %d (warnings only)\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"policy.transport_blocked: pjsip TLS transport [0.0.0.0-tls] on port 5061", // 5061 is in the defaults: must NOT appear
	} {
		if strings.Contains(out, want) {
			t.Errorf("check warns about a covered transport: %q\n%s", want, out)
		}
	}
	for _, want := range []string{
		"pjsip.transports.conf:6: warning: policy.transport_blocked: pjsip UDP transport [0.0.0.0-udp] on port 5160",
		"pjsip.transports.conf:16: warning: policy.transport_blocked: pjsip TCP transport [0.0.0.0-tcp] on port 5160",
		"http.conf:6: warning: policy.transport_blocked: http WSS transport [general] on port 8089",
		"rtp.conf:2: warning: policy.rtp_not_covered: Asterisk sends and expects RTP on UDP 16384-32767, and the policy does not admit 20001-32767",
		"iax_general_additional.conf:1: warning: policy.iax_blocked",
		"pjsip.aor.conf:3: warning: policy.trunk_not_trusted: trunk carrier-ip (aor contact 192.0.2.40)",
		"pjsip.identify.conf:5: warning: policy.trunk_not_trusted: trunk carrier-ip (identify match 198.18.7.0/24)",
		"pjsip.aor.conf:8: warning: policy.trunk_not_trusted: trunk carrier-name (aor contact sip.carrier.example)",
		"add {name: sip.carrier.example, access: sip} to trusted.hosts",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check does not say %q:\n%s", want, out)
		}
	}
}
