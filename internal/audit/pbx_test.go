package audit

import (
	"slices"
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
