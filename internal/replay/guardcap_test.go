package replay_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/replay"
)

// Captures made in the test for guard's inspector on the nftables backend:
// the evasions a substring search per packet misses and guard's inspector
// exists for. Addresses from RFC 5737; the server is the lab's 192.0.2.10.

var (
	gServer     = netip.MustParseAddr("192.0.2.10")
	gScanner    = netip.MustParseAddr("203.0.113.61")  // (a) signature split over two TCP segments
	gTLSPhone   = netip.MustParseAddr("198.51.100.61") // (c) the hostname only in the TLS server name
	gTLSOther   = netip.MustParseAddr("198.51.100.62") // a TLS client naming another host
	gFoldPhone  = netip.MustParseAddr("198.51.100.71") // (b) an allowed User-Agent folded over two lines
	gFoldOther  = netip.MustParseAddr("198.51.100.72") // a folded User-Agent that is not allowed
	gAllowedUA  = "Zoiper rv2.10"
	gPolicyBase = `interfaces:
  public: [eth+]
ssh:
  ports: [2222]
spoofing:
  exempt: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32]
guard:
  ignore_self: true
`
	// gHostnamePolicy runs the hostname knock; scanner bans last an hour
	// (a timeout makes the kernel's element tell when it was added).
	gHostnamePolicy = gPolicyBase + `sip:
  mode: hostname
  hostnames: [` + labHost + `]
  scanners:
    ban_for: 1h
`
	// gUserAgentPolicy runs the user-agent knock.
	gUserAgentPolicy = gPolicyBase + `sip:
  mode: user-agent
  user_agents: ["` + gAllowedUA + `"]
  scanners:
    ban_for: 1h
`
)

// capWriter writes an Ethernet pcap, packet by packet, on a clock that
// starts at base.
type capWriter struct {
	t    testing.TB
	buf  bytes.Buffer
	w    *pcapgo.Writer
	base time.Time
}

func newCapWriter(t testing.TB) *capWriter {
	c := &capWriter{t: t, base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c.w = pcapgo.NewWriterNanos(&c.buf)
	if err := c.w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *capWriter) write(at time.Duration, src, dst netip.Addr, l4 gopacket.SerializableLayer, payload []byte) {
	c.t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Flags: layers.IPv4DontFragment}
	switch l := l4.(type) {
	case *layers.TCP:
		ip.Protocol = layers.IPProtocolTCP
		l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		ip.Protocol = layers.IPProtocolUDP
		l.SetNetworkLayerForChecksum(ip)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		c.t.Fatal(err)
	}
	b := sb.Bytes()
	if err := c.w.WritePacket(gopacket.CaptureInfo{Timestamp: c.base.Add(at), CaptureLength: len(b), Length: len(b)}, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *capWriter) udp(at time.Duration, src, dst netip.Addr, sport, dport uint16, payload string) {
	c.write(at, src, dst, &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, []byte(payload))
}

// tcpFlow is one TCP connection of a capture; its sequence numbers
// advance with the data written.
type tcpFlow struct {
	c              *capWriter
	cli, srv       netip.Addr
	cport, sport   uint16
	cseq, sseq     uint32
	handshakeStart time.Duration
}

// connect writes the handshake: SYN, the server's SYN-ACK 1 ms later, the
// client's ACK 1 ms after that.
func (c *capWriter) connect(at time.Duration, cli netip.Addr, cport, sport uint16, iss uint32) *tcpFlow {
	f := &tcpFlow{c: c, cli: cli, srv: gServer, cport: cport, sport: sport, cseq: iss, sseq: 7000000}
	c.write(at, cli, gServer, &layers.TCP{SrcPort: layers.TCPPort(cport), DstPort: layers.TCPPort(sport), Seq: f.cseq, SYN: true, Window: 64240}, nil)
	f.cseq++
	c.write(at+time.Millisecond, gServer, cli, &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(cport), Seq: f.sseq, Ack: f.cseq, SYN: true, ACK: true, Window: 65160}, nil)
	f.sseq++
	c.write(at+2*time.Millisecond, cli, gServer, &layers.TCP{SrcPort: layers.TCPPort(cport), DstPort: layers.TCPPort(sport), Seq: f.cseq, Ack: f.sseq, ACK: true, Window: 502}, nil)
	return f
}

// send writes a client data segment at the flow's next sequence number.
func (f *tcpFlow) send(at time.Duration, data []byte) {
	f.c.write(at, f.cli, f.srv, &layers.TCP{SrcPort: layers.TCPPort(f.cport), DstPort: layers.TCPPort(f.sport), Seq: f.cseq, Ack: f.sseq, ACK: true, PSH: true, Window: 502}, data)
	f.cseq += uint32(len(data))
}

// resend writes the client's retransmission of its last n bytes.
func (f *tcpFlow) resend(at time.Duration, data []byte) {
	f.c.write(at, f.cli, f.srv, &layers.TCP{SrcPort: layers.TCPPort(f.cport), DstPort: layers.TCPPort(f.sport), Seq: f.cseq - uint32(len(data)), Ack: f.sseq, ACK: true, PSH: true, Window: 502}, data)
}

// clientHello returns a real TLS ClientHello record (crypto/tls) naming
// server, as a SIP phone on TLS port 5061 sends it first.
func clientHello(t testing.TB, server string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: server, CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS12}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 5)
	if _, err := io.ReadFull(b, head); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(head[3:5])))
	copy(rec, head)
	if _, err := io.ReadFull(b, rec[5:]); err != nil {
		t.Fatal(err)
	}
	if rec[0] != 0x16 || rec[5] != 0x01 || !bytes.Contains(rec, []byte(server)) {
		t.Fatalf("not a ClientHello naming %s: % x", server, rec[:16])
	}
	return rec
}

// The moments of the captures that the checks refer to.
const (
	gScanSplit   = 200 * time.Millisecond  // (a) the second half of the scanner's request
	gScanAgain   = 500 * time.Millisecond  // the scanner's new connection, banned
	gTLSHello    = 1100 * time.Millisecond // (c) the ClientHellos
	gTLSResend   = 1500 * time.Millisecond // their retransmissions
	gFoldFirst   = 100 * time.Millisecond  // (b) the folded REGISTERs
	gFoldResend  = 600 * time.Millisecond  // their retransmissions (SIP's T1 is 500 ms)
	gFoldOptions = 900 * time.Millisecond  // an OPTIONS from each afterwards
)

// hostnameCapture: (a) a TCP scanner whose request carries
// "user-agent: friendly-" in one segment and "scanner" in the next, which
// then connects again and sends an OPTIONS over UDP; (c) a TLS phone whose
// only knock is the secret hostname in its ClientHello's server name, and
// which retransmits the ClientHello; a TLS client naming another host,
// which does the same.
func hostnameCapture(t testing.TB) []byte {
	c := newCapWriter(t)
	f := c.connect(0, gScanner, 40001, 5060, 1000)
	first := "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/TCP 203.0.113.61:5070;branch=z9hG4bK-scan1\r\n" +
		"From: \"100\"<sip:100@1.1.1.1>;tag=6566\r\nuser-agent: friendly-"
	second := "scanner\r\nTo: \"100\"<sip:100@1.1.1.1>\r\nCall-ID: scan1@203.0.113.61\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
	f.send(100*time.Millisecond, []byte(first))
	f.send(gScanSplit, []byte(second))
	c.connect(gScanAgain, gScanner, 40002, 5060, 90000)
	c.udp(gScanAgain+100*time.Millisecond, gScanner, gServer, 5070, 5060, "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.61:5070;branch=z9hG4bK-scan2\r\n"+
		"From: <sip:100@1.1.1.1>;tag=1\r\nTo: <sip:100@1.1.1.1>\r\nCall-ID: scan2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")

	phone := c.connect(time.Second, gTLSPhone, 40100, 5061, 5000)
	other := c.connect(time.Second+10*time.Millisecond, gTLSOther, 40200, 5061, 6000)
	hello, otherHello := clientHello(t, labHost), clientHello(t, "sip.example.org")
	if bytes.Contains(hello, []byte("REGISTER")) || bytes.Contains(otherHello, []byte(labHost)) {
		t.Fatal("ClientHello carries more than the server name")
	}
	phone.send(gTLSHello, hello)
	other.send(gTLSHello+10*time.Millisecond, otherHello)
	phone.resend(gTLSResend, hello)
	other.resend(gTLSResend+10*time.Millisecond, otherHello)
	return c.buf.Bytes()
}

// foldedRegister is a REGISTER whose User-Agent is folded after its first
// word: "User-Agent: Zoiper\r\n rv2.10.20.4".
func foldedRegister(from netip.Addr, ua1, ua2 string) string {
	a := from.String()
	return "REGISTER sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP " + a + ":5062;rport;branch=z9hG4bK-fold\r\n" +
		"From: <sip:1001@192.0.2.10>;tag=1\r\nTo: <sip:1001@192.0.2.10>\r\nCall-ID: fold@" + a + "\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:1001@" + a + ":5062>\r\nUser-Agent: " + ua1 + "\r\n " + ua2 + "\r\nMax-Forwards: 70\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
}

// userAgentCapture: (b) a UDP phone whose REGISTER carries the allowed
// User-Agent folded over two lines, retransmitted after 500 ms, then an
// OPTIONS; another phone doing the same with a User-Agent not allowed.
func userAgentCapture(t testing.TB) []byte {
	c := newCapWriter(t)
	for i, src := range []netip.Addr{gFoldPhone, gFoldOther} {
		ua2 := "rv2.10.20.4"
		if src == gFoldOther {
			ua2 = "rv3.0.1"
		}
		reg := foldedRegister(src, "Zoiper", ua2)
		if strings.Contains(reg, gAllowedUA) {
			t.Fatal("the allowed user-agent is not folded")
		}
		d := time.Duration(i) * 10 * time.Millisecond
		c.udp(gFoldFirst+d, src, gServer, 5062, 5060, reg)
		c.udp(gFoldResend+d, src, gServer, 5062, 5060, reg)
		c.udp(gFoldOptions+d, src, gServer, 5062, 5060, "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP "+src.String()+":5062;branch=z9hG4bK-o\r\n"+
			"From: <sip:1001@192.0.2.10>;tag=2\r\nTo: <sip:192.0.2.10>\r\nCall-ID: o@"+src.String()+"\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	}
	return c.buf.Bytes()
}

func loadPolicyText(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// listsOf returns the sources of rep in list, with when they entered it.
func listsOf(rep *replay.Report, list string) map[netip.Addr]time.Time {
	out := map[netip.Addr]time.Time{}
	for _, s := range rep.Sources {
		if at, ok := s.InList(list); ok {
			out[s.Addr] = at
		}
	}
	return out
}

// incomingSources returns the source of every packet of capture to a lab
// address, in order.
func incomingSources(t testing.TB, pcap []byte) []netip.Addr {
	t.Helper()
	rd, err := capture.NewReader("guard.pcap", bytes.NewReader(pcap))
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		var p packet.Packet
		if packet.Decode(rec.LinkType, rec.Data, &p); isLocal(p.Dst) {
			out = append(out, p.Src)
		}
	}
	return out
}
