package inspect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
)

const secret = "pbx-7f3k.example.net"

// articleSignatures are the policy's default scanner signatures.
var articleSignatures = []policy.Signature{
	{Match: "sundayddr"}, {Match: "sipsak"}, {Match: "sipvicious", IgnoreCase: true},
	{Match: "friendly-scanner"}, {Match: "iWar"}, {Match: "sip-scan"}, {Match: "sipcli"},
	{Match: "eyeBeam"}, {Match: "VaxSIPUserAgent"}, {Match: "sip:nm@nm"},
}

func hostnameConfig() Config {
	return Config{Mode: policy.ModeHostname, Hostnames: []string{secret}, Signatures: articleSignatures}
}

// frame builds a raw IPv4 (or IPv6) datagram carrying UDP or TCP.
func frame(src string, sport uint16, proto uint8, seq uint32, flags uint8, payload []byte) []byte {
	s := netip.MustParseAddr(src)
	d := netip.MustParseAddr("192.0.2.10")
	if s.Is6() {
		d = netip.MustParseAddr("2001:db8:10::10")
	}
	var l4 []byte
	if proto == packet.ProtoUDP {
		l4 = make([]byte, 8, 8+len(payload))
		binary.BigEndian.PutUint16(l4[0:], sport)
		binary.BigEndian.PutUint16(l4[2:], 5060)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	} else {
		l4 = make([]byte, 20, 20+len(payload))
		binary.BigEndian.PutUint16(l4[0:], sport)
		binary.BigEndian.PutUint16(l4[2:], 5060)
		binary.BigEndian.PutUint32(l4[4:], seq)
		l4[12] = 5 << 4
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:], 65535)
	}
	l4 = append(l4, payload...)
	if s.Is4() {
		ip := make([]byte, 20, 20+len(l4))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[8] = 64
		ip[9] = proto
		a, b := s.As4(), d.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		return append(ip, l4...)
	}
	ip := make([]byte, 40, 40+len(l4))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	ip[6] = proto
	ip[7] = 64
	a, b := s.As16(), d.As16()
	copy(ip[8:], a[:])
	copy(ip[24:], b[:])
	return append(ip, l4...)
}

func decode(t testing.TB, b []byte) *packet.Packet {
	t.Helper()
	var p packet.Packet
	if err := packet.Decode(packet.LinkRaw, b, &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &p
}

func udp(t testing.TB, in *Inspector, src, msg string) Result {
	t.Helper()
	return in.Inspect(decode(t, frame(src, 5062, packet.ProtoUDP, 0, 0, []byte(msg))))
}

func register(ruri, ua string, extra ...string) string {
	h := []string{
		"REGISTER sip:" + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK776asdhds",
		"From: <sip:1001@" + ruri + ">;tag=1928301774",
		"To: <sip:1001@" + ruri + ">",
		"Call-ID: a84b4c76e66710",
		"CSeq: 1 REGISTER",
	}
	if ua != "" {
		h = append(h, "User-Agent: "+ua)
	}
	h = append(h, extra...)
	return strings.Join(h, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

func TestUDPVerdicts(t *testing.T) {
	in := New(hostnameConfig())
	cases := []struct {
		name, msg string
		verdict   Verdict
		reason    Reason
		match     string
	}{
		{"knock in the request URI", register(secret, "Yealink SIP-T46S"), Admit, ReasonHostname, secret},
		{"knock in upper case", register(strings.ToUpper(secret), "Yealink SIP-T46S"), Admit, ReasonHostname, secret},
		{"no knock: the server's address", register("192.0.2.10", "Yealink SIP-T46S"), Pass, ReasonNoKnock, ""},
		{"knock only in a header the parser does not record",
			register("192.0.2.10", "Yealink", "Route: <sip:"+secret+";lr>"), Admit, ReasonHostname, secret},
		{"scanner User-Agent", register("192.0.2.10", "friendly-scanner"), Ban, ReasonSignature, "friendly-scanner"},
		{"scanner with lower-case header name",
			strings.Replace(register("192.0.2.10", "friendly-scanner"), "User-Agent:", "user-agent:", 1), Ban, ReasonSignature, "friendly-scanner"},
		{"scanner that knows the hostname is still banned", register(secret, "sipcli/v1.8"), Ban, ReasonSignature, "sipcli"},
		{"icase signature", register("192.0.2.10", "SIPVicious 0.3"), Ban, ReasonSignature, "sipvicious"},
		{"case-sensitive signature does not match other case", register("192.0.2.10", "Friendly-Scanner"), Pass, ReasonNoKnock, ""},
		{"sip:nm@nm in From", "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nf: <sip:nm@nm>;tag=1\r\nt: <sip:nm2@nm2>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n", Ban, ReasonSignature, "sip:nm@nm"},
		{"not SIP", "GET / HTTP/1.1\r\nHost: " + secret + "\r\n\r\n", Pass, ReasonNotSIP, ""},
		{"headers cut short still searched", "REGISTER sip:" + secret + " SIP/2.0\r\nVia: SIP/2.0/UDP x", Admit, ReasonHostname, secret},
	}
	for _, c := range cases {
		r := udp(t, in, "198.51.100.7", c.msg)
		if r.Verdict != c.verdict || r.Reason != c.reason || r.Match != c.match {
			t.Errorf("%s: got %v/%v/%q, want %v/%v/%q", c.name, r.Verdict, r.Reason, r.Match, c.verdict, c.reason, c.match)
		}
		if r.Src != netip.MustParseAddr("198.51.100.7") {
			t.Errorf("%s: source %v", c.name, r.Src)
		}
	}
}

func TestCompactFormsAndFolding(t *testing.T) {
	in := New(hostnameConfig())
	// Compact header names only; the hostname is in the compact To (t:).
	compact := "INVITE sip:100@192.0.2.10 SIP/2.0\r\nv: SIP/2.0/UDP 198.51.100.7\r\nf: <sip:a@198.51.100.7>;tag=9\r\nt: <sip:100@" + secret + ">\r\ni: 1@x\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"
	if r := udp(t, in, "198.51.100.7", compact); r.Verdict != Admit {
		t.Errorf("compact To: %v/%v", r.Verdict, r.Reason)
	}
	// A folded User-Agent whose signature spans the fold.
	uaSig := New(Config{Mode: policy.ModeOpen, Signatures: []policy.Signature{{Match: "Evil Dialer 2.0", IgnoreCase: true}}})
	folded := register("192.0.2.10", "Evil\r\n   Dialer 2.0")
	if r := udp(t, uaSig, "198.51.100.7", folded); r.Verdict != Ban || r.Match != "Evil Dialer 2.0" {
		t.Errorf("folded signature: %v/%v", r.Verdict, r.Reason)
	}
	// Open mode never admits.
	if r := udp(t, uaSig, "198.51.100.7", register(secret, "Yealink")); r.Verdict != Pass {
		t.Errorf("open mode: %v", r.Verdict)
	}
}

func TestUserAgentMode(t *testing.T) {
	in := New(Config{Mode: policy.ModeUserAgent, UserAgents: []string{"Yealink SIP-T46S"}, Signatures: articleSignatures})
	for _, c := range []struct {
		msg  string
		want Verdict
	}{
		{register("192.0.2.10", "Yealink SIP-T46S 66.86.0.15"), Admit},
		{strings.Replace(register("192.0.2.10", "yealink sip-t46s 66.86"), "User-Agent:", "USER-AGENT:", 1), Admit},
		{register("192.0.2.10", "Yealink\r\n\tSIP-T46S 66.86"), Admit}, // folded
		{register("192.0.2.10", "Grandstream"), Pass},
		// The allowed string elsewhere than the User-Agent does not admit.
		{register("192.0.2.10", "Grandstream", "Subject: Yealink SIP-T46S"), Pass},
		{register("192.0.2.10", "Yealink SIP-T46S sipcli"), Ban},
	} {
		if r := udp(t, in, "198.51.100.7", c.msg); r.Verdict != c.want {
			t.Errorf("%q: got %v (%v), want %v", c.msg, r.Verdict, r.Reason, c.want)
		}
	}
}

func tcp(t testing.TB, in *Inspector, src string, sport uint16, seq uint32, flags uint8, data string) Result {
	t.Helper()
	return in.Inspect(decode(t, frame(src, sport, packet.ProtoTCP, seq, flags, []byte(data))))
}

func TestTCPSplitAcrossSegments(t *testing.T) {
	msg := strings.Replace(register("192.0.2.10", "friendly-scanner"), "User-Agent:", "user-agent:", 1)
	cut := strings.Index(msg, "friendly-") + len("friendly-")
	for _, src := range []string{"203.0.113.11", "2001:db8:20::11"} {
		in := New(hostnameConfig())
		if r := tcp(t, in, src, 40000, 1000, packet.TCPSyn, ""); r.Verdict != Pass {
			t.Fatalf("SYN: %v", r.Verdict)
		}
		r := tcp(t, in, src, 40000, 1001, packet.TCPAck|packet.TCPPsh, msg[:cut])
		if r.Verdict != Pass || r.Reason != ReasonIncomplete {
			t.Fatalf("%s first segment: %v/%v, want pass/incomplete", src, r.Verdict, r.Reason)
		}
		if s := in.Stats(); s.Flows != 1 {
			t.Fatalf("flows %d", s.Flows)
		}
		// The first segment is retransmitted (the filter chain drops data
		// of unknown flows): the duplicate bytes are ignored.
		if r := tcp(t, in, src, 40000, 1001, packet.TCPAck|packet.TCPPsh, msg[:cut]); r.Verdict != Pass {
			t.Fatalf("retransmission: %v", r.Verdict)
		}
		r = tcp(t, in, src, 40000, 1001+uint32(cut), packet.TCPAck|packet.TCPPsh, msg[cut:])
		if r.Verdict != Ban || r.Match != "friendly-scanner" || r.Src != netip.MustParseAddr(src) {
			t.Fatalf("%s second segment: %+v, want ban friendly-scanner", src, r)
		}
		if s := in.Stats(); s.Flows != 0 || s.Banned != 1 {
			t.Errorf("after the verdict: %+v", s)
		}
	}
}

func TestTCPKnockSplitInHostname(t *testing.T) {
	in := New(hostnameConfig())
	msg := register(secret, "Yealink")
	cut := strings.Index(msg, "7f3k") + 2
	tcp(t, in, "198.51.100.21", 41000, 5000, packet.TCPAck, msg[:cut])
	r := tcp(t, in, "198.51.100.21", 41000, 5000+uint32(cut), packet.TCPAck, msg[cut:])
	if r.Verdict != Admit || r.Reason != ReasonHostname {
		t.Fatalf("got %+v", r)
	}
	// A second flow from another port that ends before its message does
	// is forgotten at FIN.
	tcp(t, in, "198.51.100.22", 41001, 7000, packet.TCPAck, msg[:cut])
	tcp(t, in, "198.51.100.22", 41001, 7000+uint32(cut), packet.TCPFin|packet.TCPAck, "")
	if s := in.Stats(); s.Flows != 0 {
		t.Errorf("flows after FIN: %d", s.Flows)
	}
}

func TestTCPTwoMessagesInOneSegment(t *testing.T) {
	in := New(hostnameConfig())
	data := register("192.0.2.10", "Yealink") + register(secret, "Yealink")
	r := tcp(t, in, "198.51.100.30", 42000, 1, packet.TCPAck, data)
	if r.Verdict != Admit {
		t.Fatalf("second message's knock: %+v", r)
	}
}

func TestTLSClientHelloSNI(t *testing.T) {
	in := New(hostnameConfig())
	// A minimal ClientHello record carrying the server name in plain text.
	name := []byte(secret)
	hello := []byte{0x16, 0x03, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x03}
	hello = append(hello, make([]byte, 40)...)
	hello = append(hello, 0x00, 0x00, 0x00, byte(len(name)+5), 0x00, byte(len(name)+3), 0x00, 0x00, byte(len(name)))
	hello = append(hello, name...)
	r := tcp(t, in, "198.51.100.40", 43000, 1, packet.TCPAck, string(hello))
	if r.Verdict != Admit || r.Reason != ReasonTLSName {
		t.Fatalf("got %+v", r)
	}
	other := []byte(strings.Replace(string(hello), secret, "www.example.com.....", 1))
	if r := tcp(t, in, "198.51.100.41", 43000, 1, packet.TCPAck, string(other)); r.Verdict != Pass {
		t.Fatalf("other SNI: %+v", r)
	}
}

func TestFlowEviction(t *testing.T) {
	cfg := hostnameConfig()
	cfg.MaxFlows = 4
	in := New(cfg)
	half := register(secret, "Yealink")[:30]
	for i := 0; i < 10; i++ {
		tcp(t, in, fmt.Sprintf("198.51.100.%d", 50+i), 44000, 1, packet.TCPAck, half)
	}
	s := in.Stats()
	if s.Flows != 4 || s.Evicted != 6 {
		t.Fatalf("flows %d evicted %d, want 4 and 6", s.Flows, s.Evicted)
	}
	// The newest flows survived: the last one completes its knock.
	rest := register(secret, "Yealink")[30:]
	if r := tcp(t, in, "198.51.100.59", 44000, 31, packet.TCPAck, rest); r.Verdict != Admit {
		t.Fatalf("newest flow lost: %+v", r)
	}
}

var benchMsgs = []string{
	register("192.0.2.10", "friendly-scanner"),
	register(secret, "Yealink SIP-T46S 66.86.0.15"),
	register("192.0.2.10", "Grandstream GXP2170 1.0.11.23", "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE", "Supported: replaces, path, timer, eventlist"),
	"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nf: <sip:nm@nm>;tag=1\r\nt: <sip:nm2@nm2>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
}

func TestInspectAllocs(t *testing.T) {
	in := New(hostnameConfig())
	var pkts []*packet.Packet
	for _, m := range benchMsgs {
		pkts = append(pkts, decode(t, frame("198.51.100.7", 5062, packet.ProtoUDP, 0, 0, []byte(m))))
	}
	msg := register(secret, "Yealink")
	seg1 := decode(t, frame("198.51.100.8", 45000, packet.ProtoTCP, 1, packet.TCPAck, []byte(msg[:40])))
	seg2 := decode(t, frame("198.51.100.8", 45000, packet.ProtoTCP, 41, packet.TCPAck, []byte(msg[40:])))
	run := func() {
		for _, p := range pkts {
			in.Inspect(p)
		}
		in.Inspect(seg1)
		if r := in.Inspect(seg2); r.Verdict != Admit {
			t.Fatalf("TCP knock: %+v", r)
		}
	}
	run() // warm the flow map
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

func BenchmarkInspectUDP(b *testing.B) {
	in := New(hostnameConfig())
	var pkts []*packet.Packet
	for _, m := range benchMsgs {
		pkts = append(pkts, decode(b, frame("198.51.100.7", 5062, packet.ProtoUDP, 0, 0, []byte(m))))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		in.Inspect(pkts[i%len(pkts)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
}

// BenchmarkDecodeInspect includes the packet decoding guard does for each
// nflog message.
func BenchmarkDecodeInspect(b *testing.B) {
	in := New(hostnameConfig())
	var frames [][]byte
	for _, m := range benchMsgs {
		frames = append(frames, frame("198.51.100.7", 5062, packet.ProtoUDP, 0, 0, []byte(m)))
	}
	var p packet.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := packet.Decode(packet.LinkRaw, frames[i%len(frames)], &p); err != nil {
			b.Fatal(err)
		}
		in.Inspect(&p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
}

func BenchmarkInspectTCPSplit(b *testing.B) {
	in := New(hostnameConfig())
	msg := register(secret, "Yealink")
	seg1 := decode(b, frame("198.51.100.8", 45000, packet.ProtoTCP, 1, packet.TCPAck, []byte(msg[:40])))
	seg2 := decode(b, frame("198.51.100.8", 45000, packet.ProtoTCP, 41, packet.TCPAck, []byte(msg[40:])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		in.Inspect(seg1)
		in.Inspect(seg2)
	}
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "pkt/s")
}
