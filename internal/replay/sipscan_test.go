package replay

import (
	"bytes"
	"testing"

	"github.com/sipwall/sipwall/internal/sip"
)

var scanCases = []string{
	"REGISTER sip:pbx.example-secret.net SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.21\r\nUser-Agent: Zoiper rv2.10.20.4\r\nContent-Length: 0\r\n\r\n",
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nuser-agent   :   friendly-scanner  \r\n\r\n",
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUSER-AGENT:sipvicious\r\nContent-Length: 0\r\n\r\nbody\r\nUser-Agent: not a header\r\n",
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: folded\r\n value\r\n\r\n",
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\nUser-Agent: bare LF\n\n",
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: one\r\nUser-Agent: two\r\n\r\n",
	"INVITE  sip:a@b  SIP/2.0\r\n\r\n",
	"INVITE sip:a@b HTTP/1.1\r\n\r\n",
	"SIP/2.0 200 OK\r\nUser-Agent: x\r\n\r\n",
	"REGISTER sip:x SIP/2.0\r\nUser-Agentx: y\r\n\r\n",
	"REGISTER\r\n\r\n",
	"ACK sip:a@b sip/2.0\r\nUser-Agent: lower-case version\r\n",
	"BYE sip:a@b SIP/2.0\r\nUser-Agent: no end of headers",
}

// TestScanRequestAgreesWithParse: the report's quick look at a request
// gives sip.Parse's answer.
func TestScanRequestAgreesWithParse(t *testing.T) {
	for _, c := range scanCases {
		checkScan(t, []byte(c))
	}
}

func FuzzScanRequest(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkScan(t, b) })
}

func checkScan(t *testing.T, b []byte) {
	t.Helper()
	var m1, m2 sip.Message
	got, ok := scanRequest(b, &m1)
	_ = sip.Parse(b, &m2)
	want := m2.Request && len(m2.MethodName) > 0
	if ok != want {
		t.Fatalf("%q: request %v, sip.Parse says %v", b, ok, want)
	}
	if !ok {
		return
	}
	if !bytes.Equal(got.method, m2.MethodName) || !bytes.Equal(got.userAgent, m2.UserAgent()) || got.register != (m2.Method == sip.MethodREGISTER) {
		t.Fatalf("%q: method %q UA %q register %v; sip.Parse: %q %q %v", b, got.method, got.userAgent, got.register, m2.MethodName, m2.UserAgent(), m2.Method == sip.MethodREGISTER)
	}
}

func TestFoldFinder(t *testing.T) {
	cases := []struct {
		needle, hay string
		want        bool
	}{
		{"pbx.example-secret.net", "REGISTER sip:PBX.Example-Secret.NET SIP/2.0", true},
		{"pbx.example-secret.net", "REGISTER sip:pbx.example-secret.ne", false},
		{"pbx.example-secret.net", ".pbx.example-secret.net", true},
		{"pbx.example-secret.net", "pbx.example-secret.net", true},
		{"pbx.example-secret.net", "pbx.", false},
		{"friendly-scanner", "User-Agent: Friendly-Scanner", true},
		{"sipvicious", "user-agent: SIPVicious", true},
		{"sipvicious", "sipviciou", false},
		{"x", "", false},
	}
	for _, c := range cases {
		f := newFoldFinder(c.needle)
		if got := f.in([]byte(c.hay)); got != c.want || got != sip.ContainsFold(c.hay, c.needle) {
			t.Errorf("%q in %q: %v, want %v", c.needle, c.hay, got, c.want)
		}
	}
}

func FuzzFoldFinder(f *testing.F) {
	f.Add("pbx.example-secret.net", []byte("REGISTER sip:PBX.example-secret.net SIP/2.0"))
	f.Add("a.b", []byte("xA.Bx"))
	f.Fuzz(func(t *testing.T, needle string, hay []byte) {
		ff := newFoldFinder(needle)
		if got, want := ff.in(hay), sip.ContainsFold(hay, needle); got != want {
			t.Fatalf("%q in %q: %v, sip.ContainsFold %v", needle, hay, got, want)
		}
	})
}
