package audit

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestURIHost(t *testing.T) {
	for in, want := range map[string]string{
		"sip:sip.carrier.example:5060":                  "sip.carrier.example",
		"sip:4412345@sip.carrier.example:5060":          "sip.carrier.example",
		"<sips:trunk@[2001:db8::7]:5061;transport=tls>": "2001:db8::7",
		"sip:edge.carrier.example;lr":                   "edge.carrier.example",
		"SIP:203.0.113.9":                               "203.0.113.9",
	} {
		if got := uriHost(in); got != want {
			t.Errorf("uriHost(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"4455:S3cret@legacy.carrier.example:5060/4455":        "legacy.carrier.example",
		"tcp://4455@carrier.example:secret:auth@192.0.2.9~90": "192.0.2.9",
		"trunk?user:pass@sip.example.net":                     "sip.example.net",
	} {
		if got := registerHost(in); got != want {
			t.Errorf("registerHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReadPBXHardened reads the hardened test configuration: its
// transports and the trunk addresses of its identify sections.
func TestReadPBXHardened(t *testing.T) {
	pbx, err := ReadPBX("testdata/asterisk/hardened", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pbx.Problems) != 0 {
		t.Errorf("problems: %v", pbx.Problems)
	}
	var got []string
	for _, tr := range pbx.Transports {
		got = append(got, tr.String())
	}
	want := []string{"pjsip UDP transport [transport-udp] on port 5060", "pjsip TLS transport [transport-tls] on port 5061", "chan_sip UDP transport [general] on port 5060"}
	if !slices.Equal(got, want) {
		t.Errorf("transports %q, want %q", got, want)
	}
	var hosts []string
	for _, tr := range pbx.Trunks {
		hosts = append(hosts, tr.Host)
	}
	if want := []string{"198.51.100.1", "198.51.100.2"}; !slices.Equal(hosts, want) {
		t.Errorf("trunks %v, want %v", hosts, want)
	}
	if pbx.RTP != (PortRange{5000, 31000}) {
		t.Errorf("RTP %v, want Asterisk's default", pbx.RTP)
	}
	// modules.conf does not load chan_iax2: its guest opens nothing.
	if pbx.IAX != nil {
		t.Errorf("IAX2 %v, but chan_iax2 is not loaded", pbx.IAX)
	}
}

// TestAuditPBXCoverage audits the FreePBX-style configuration against a
// policy that knows nothing of it, then against one that covers it.
func TestAuditPBXCoverage(t *testing.T) {
	const dir = "testdata/asterisk/freepbx"
	bare := &Exposure{
		Profile: ProfileSipwall, KnockSIP: true, IPv6: true,
		TCPPorts: []PortRange{{22, 22}, {5060, 5082}, {5061, 5061}},
		UDPPorts: []PortRange{{5060, 5082}, {10000, 20000}},
	}
	r := runAudit(t, Config{AsteriskDir: dir, Exposure: bare})
	got := keys(r, dir, "policy.")
	want := []string{
		"high policy.transport_blocked pjsip.transports.conf:6",  // UDP 5160
		"high policy.transport_blocked pjsip.transports.conf:16", // TCP 5160
		"high policy.transport_blocked http.conf:6",              // WSS 8089
		"high policy.rtp_not_covered rtp.conf:2",
		"high policy.iax_blocked iax_general_additional.conf:1",
		"high policy.trunk_not_trusted pjsip.aor.conf:3",
		"high policy.trunk_not_trusted pjsip.aor.conf:8",
		"high policy.trunk_not_trusted pjsip.identify.conf:5",
		"high policy.trunk_not_trusted pjsip.identify.conf:5",
		"high policy.trunk_not_trusted pjsip.registration.conf:7",
		"high policy.trunk_not_trusted sip_registrations.conf:1",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("findings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// WebRTC uses WSS on 8089: the audit must not advise binding it to
	// 127.0.0.1, which would end WebRTC.
	for _, f := range r.Findings {
		if f.Check == "http.public_bind" && strings.Contains(f.Fix, "8089") {
			t.Errorf("the audit advises %q although WebRTC uses 8089", f.Fix)
		}
	}
	find(t, r, "http.webrtc_public", "http.conf:6")

	covered := *bare
	covered.TCPPorts = append(covered.TCPPorts, PortRange{5160, 5160}, PortRange{8089, 8089})
	covered.UDPPorts = []PortRange{{5060, 5060}, {5160, 5160}, {16384, 32767}, {4569, 4569}}
	covered.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.40/31"), netip.MustParsePrefix("198.18.0.0/15")}
	covered.TrustedHosts = []string{"SIP.carrier.example.", "edge.carrier.example", "legacy.carrier.example"}
	r = runAudit(t, Config{AsteriskDir: dir, Exposure: &covered})
	if got := keys(r, dir, "policy."); len(got) != 0 {
		t.Errorf("a policy covering the PBX still gets %v", got)
	}
	// Open mode: an untrusted trunk is a medium finding (it can be banned,
	// its calls are not dropped for want of a knock).
	open := covered
	open.KnockSIP, open.TrustedHosts = false, nil
	r = runAudit(t, Config{AsteriskDir: dir, Exposure: &open})
	if got := keys(r, dir, "policy."); len(got) != 3 || got[0] != "medium policy.trunk_not_trusted pjsip.aor.conf:8" {
		t.Errorf("open mode: %v", got)
	}
}
