package sip

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket/pcapgo"
	"github.com/sipwall/sipwall/internal/packet"
)

func crlf(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n")) }

func TestCompactFormsAndCase(t *testing.T) {
	msg := crlf(
		"REGISTER sip:pbx.example-secret.net SIP/2.0",
		"v: SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bK-1",
		"V: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2",
		"f: <sip:1001@pbx.example-secret.net>;tag=1",
		"t: <sip:1001@pbx.example-secret.net>",
		"i: abc@198.51.100.21",
		"m: <sip:1001@198.51.100.21:5060>",
		"c: application/sdp",
		"s: hello",
		"o: presence",
		"k: path",
		"cseq: 2 REGISTER",
		"USER-AGENT: Zoiper rv2.10.20.4",
		"sErVeR: not-really",
		"max-forwards: 70",
		"EXPIRES: 3600",
		"authorization: Digest username=\"1001\"",
		"X-Unknown: whatever",
		"l: 4",
		"",
		"body")
	var m Message
	if err := Parse(msg, &m); err != nil {
		t.Fatal(err)
	}
	want := map[Header]string{
		HeaderVia:           "SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bK-1",
		HeaderFrom:          "<sip:1001@pbx.example-secret.net>;tag=1",
		HeaderTo:            "<sip:1001@pbx.example-secret.net>",
		HeaderCallID:        "abc@198.51.100.21",
		HeaderContact:       "<sip:1001@198.51.100.21:5060>",
		HeaderContentType:   "application/sdp",
		HeaderSubject:       "hello",
		HeaderEvent:         "presence",
		HeaderSupported:     "path",
		HeaderCSeq:          "2 REGISTER",
		HeaderUserAgent:     "Zoiper rv2.10.20.4",
		HeaderServer:        "not-really",
		HeaderMaxForwards:   "70",
		HeaderExpires:       "3600",
		HeaderAuthorization: "Digest username=\"1001\"",
		HeaderContentLength: "4",
	}
	for h := Header(0); h < NumHeaders; h++ {
		if got := string(m.Header(h)); got != want[h] {
			t.Errorf("%v = %q, want %q", h, got, want[h])
		}
	}
	if m.Counts[HeaderVia] != 2 {
		t.Errorf("Via count %d, want 2", m.Counts[HeaderVia])
	}
	if m.HeaderLines != 18 {
		t.Errorf("HeaderLines = %d, want 18", m.HeaderLines)
	}
	if string(m.Body) != "body" || m.ContentLength != 4 || m.Len != len(msg) {
		t.Errorf("body %q cl %d len %d", m.Body, m.ContentLength, m.Len)
	}
	if m.Anomalies != 0 || m.Folded || m.BareLF {
		t.Errorf("anomalies %v folded %v bareLF %v", m.Anomalies, m.Folded, m.BareLF)
	}
	if m.CSeqNum != 2 || string(m.CSeqMethod) != "REGISTER" {
		t.Errorf("CSeq %d %q", m.CSeqNum, m.CSeqMethod)
	}
	if m.Method != MethodREGISTER || m.Method.String() != "REGISTER" {
		t.Errorf("method %v", m.Method)
	}
}

func TestMethodsAreCaseSensitive(t *testing.T) {
	var m Message
	if err := Parse([]byte("invite sip:a@b SIP/2.0\r\n\r\n"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Method != MethodUnknown || string(m.MethodName) != "invite" {
		t.Errorf("method %v %q", m.Method, m.MethodName)
	}
	for meth := MethodINVITE; meth < numMethods; meth++ {
		if LookupMethod(meth.String()) != meth {
			t.Errorf("LookupMethod(%q) != %v", meth.String(), meth)
		}
	}
}

func TestFoldedLinesAndBareLF(t *testing.T) {
	msg := []byte("OPTIONS sip:100@192.0.2.10 SIP/2.0\n" +
		"User-Agent: friendly-\n" + // a fold cannot split a token; this is two words
		"\tscanner\n" +
		"From:\n   <sip:100@x>\n  ;tag=1\n" +
		"To: <sip:100@x>\n\n")
	var m Message
	if err := Parse(msg, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Folded || !m.BareLF {
		t.Errorf("Folded %v BareLF %v, want both", m.Folded, m.BareLF)
	}
	if got := string(m.UserAgent()); got != "friendly-\n\tscanner" {
		t.Errorf("UserAgent = %q", got)
	}
	if got := string(m.From()); got != "<sip:100@x>\n  ;tag=1" {
		t.Errorf("From = %q", got)
	}
	if got := string(AppendUnfolded(nil, m.From())); got != "<sip:100@x> ;tag=1" {
		t.Errorf("unfolded From = %q", got)
	}
	if got := string(AppendUnfolded(nil, []byte("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2"))); got != "SIP  /   2.0 /UDP 192.0.2.2" {
		t.Errorf("unfolded = %q", got)
	}
	if m.HeaderLen != len(msg) || m.ContentLength != -1 || len(m.Body) != 0 {
		t.Errorf("HeaderLen %d ContentLength %d Body %q", m.HeaderLen, m.ContentLength, m.Body)
	}
}

func TestResponses(t *testing.T) {
	tests := []struct {
		in     string
		status int
		reason string
		anom   Anomaly
	}{
		{"SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\n\r\n", 401, "Unauthorized", AnomalyMissing},
		{"SIP/2.0 100\r\n\r\n", 100, "", AnomalyMissing},
		{"SIP/2.0 099 Low\r\n\r\n", 0, "Low", AnomalyStatusCode | AnomalyMissing},
		{"SIP/2.0 2000 Big\r\n\r\n", 0, "Big", AnomalyStatusCode | AnomalyMissing},
		{"SIP/3.0 200 OK\r\n\r\n", 200, "OK", AnomalyVersion | AnomalyMissing},
	}
	for _, tc := range tests {
		var m Message
		if err := Parse([]byte(tc.in), &m); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if m.Request || m.StatusCode != tc.status || string(m.Reason) != tc.reason || m.Anomalies != tc.anom {
			t.Errorf("%q: request %v status %d reason %q anomalies %v", tc.in, m.Request, m.StatusCode, m.Reason, m.Anomalies)
		}
	}
	var m Message
	_ = Parse([]byte(tests[0].in), &m)
	if m.Method != MethodREGISTER {
		t.Errorf("response method from CSeq = %v", m.Method)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		err error
	}{
		{"", ErrEmpty},
		{"\r\n\r\n", ErrKeepAlive},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrNotSIP},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrNotSIP},
		{"INVITE\r\n\r\n", ErrNotSIP},
		{"INVITE SIP/2.0\r\n\r\n", ErrNotSIP},
		{"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", ErrIncomplete},
		{"OPTIONS sip:a@b SIP/2.0\r\nUser-Agent: sipvicious", ErrIncomplete},
		{"OPTIONS sip:a@b SIP/2.0", ErrIncomplete},
		{"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 12x\r\n\r\n", ErrContentLength},
		{"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n", ErrContentLength},
		{"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nabc", ErrShortBody},
	}
	for _, tc := range tests {
		var m Message
		if err := Parse([]byte(tc.in), &m); !errors.Is(err, tc.err) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, err, tc.err)
		}
	}
	// Fields before an error are kept.
	var m Message
	_ = Parse([]byte("OPTIONS sip:a@b SIP/2.0\r\nUser-Agent: sipvicious"), &m)
	if string(m.UserAgent()) != "sipvicious" || m.Method != MethodOPTIONS {
		t.Errorf("partial message: %v UA %q", m.Method, m.UserAgent())
	}
	// A header line without a colon is skipped, not fatal.
	_ = Parse([]byte("OPTIONS sip:a@b SIP/2.0\r\nGarbage line\r\nUser-Agent: x\r\n\r\n"), &m)
	if m.Anomalies&AnomalyHeaderLine == 0 || string(m.UserAgent()) != "x" {
		t.Errorf("bad header line: %v UA %q", m.Anomalies, m.UserAgent())
	}
}

func TestFoldHelpers(t *testing.T) {
	if !ContainsFold([]byte("User-Agent: Friendly-Scanner"), "friendly-scanner") {
		t.Error("ContainsFold missed")
	}
	if ContainsFold("pbx.example-secret.net", []byte("secret.org")) {
		t.Error("ContainsFold false hit")
	}
	if !ContainsFold("abc", "") || ContainsFold("", "a") {
		t.Error("ContainsFold edge cases")
	}
	if IndexFold("xxSIPVICIOUS", "sipvicious") != 2 || IndexFold("ab", "abc") != -1 {
		t.Error("IndexFold")
	}
	if !EqualFold("Call-ID", []byte("call-id")) || EqualFold("Call-ID", "Call-IE") || EqualFold("a", "ab") {
		t.Error("EqualFold")
	}
	// Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by 0x20 too.
	if EqualFold("@", "`") || EqualFold("[", "{") {
		t.Error("EqualFold folds non-letters")
	}
	if !HasPrefixFold("sip:PBX", "SIP:") || !HasSuffixFold("pbx.Example-Secret.NET", ".example-secret.net") || HasSuffixFold("t", "net") {
		t.Error("prefix/suffix")
	}
}

func TestURIHost(t *testing.T) {
	tests := map[string]string{
		"sip:pbx.example-secret.net":                        "pbx.example-secret.net",
		"sip:100@192.0.2.10":                                "192.0.2.10",
		"SIP:100@PBX.Example-Secret.NET:5060;transport=tcp": "PBX.Example-Secret.NET",
		"\"Joe\" <sips:joe@example.com;lr>;tag=1":           "example.com",
		"<sip:user;par=u%40example.net@example.com>":        "example.com",
		"sip:[2001:db8::10]:5060":                           "[2001:db8::10]",
		"sip:u@host?Route=x@y":                              "host",
		"tel:+1234":                                         "",
		"<http://example.com>":                              "",
		"sip:[2001:db8::10":                                 "",
	}
	for in, want := range tests {
		if got := string(URIHost([]byte(in))); got != want {
			t.Errorf("URIHost(%q) = %q, want %q", in, got, want)
		}
	}
}

const corpusDir = "../../../shared/corpus/pcap"

// corpusPayloads returns the SIP payloads (UDP or TCP, port 5060) of every
// capture in the corpus, decoded with internal/packet.
func corpusPayloads(t testing.TB) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	if len(files) == 0 {
		t.Fatalf("no captures in %s", corpusDir)
	}
	var out [][]byte
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		var p packet.Packet
		for {
			data, _, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if packet.Decode(packet.LinkType(r.LinkType()), data, &p) != nil || len(p.Payload) == 0 {
				continue
			}
			if p.SrcPort == 5060 || p.DstPort == 5060 {
				out = append(out, p.Payload)
			}
		}
		f.Close()
	}
	return out
}

func TestCorpusPayloads(t *testing.T) {
	payloads := corpusPayloads(t)
	uas := map[string]int{}
	var m Message
	for i, pl := range payloads {
		if err := Parse(pl, &m); err != nil {
			t.Fatalf("payload %d: %v\n%q", i, err, pl)
		}
		if m.Request {
			uas[string(m.UserAgent())]++
		}
	}
	for _, ua := range []string{"friendly-scanner", "sipsak 0.9.8.1", "Zoiper rv2.10.20.4"} {
		if uas[ua] == 0 {
			t.Errorf("no request with User-Agent %q; saw %v", ua, uas)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	payloads := corpusPayloads(t)
	for _, f := range []string{"valid/wsinv.dat", "invalid/mcl01.dat", "invalid/test.dat"} {
		b, err := os.ReadFile(filepath.Join(tortureDir, f))
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, b)
	}
	var m Message
	var buf [512]byte
	allocs := testing.AllocsPerRun(20, func() {
		for _, pl := range payloads {
			_ = Parse(pl, &m)
			_ = ContainsFold(m.UserAgent(), "friendly-scanner")
			_ = URIHost(m.RequestURI)
			_ = AppendUnfolded(buf[:0], m.Via())
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	payloads := corpusPayloads(b)
	var m Message
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		_ = Parse(payloads[n%len(payloads)], &m)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "messages/s")
}

func BenchmarkParseAndMatch(b *testing.B) {
	payloads := corpusPayloads(b)
	var m Message
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		_ = Parse(payloads[n%len(payloads)], &m)
		_ = ContainsFold(m.UserAgent(), "friendly-scanner")
		_ = HasSuffixFold(URIHost(m.RequestURI), "example-secret.net")
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "messages/s")
}
