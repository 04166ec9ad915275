package replay_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/replay"
)

var (
	trustTrunk   = netip.MustParseAddr("198.51.100.50") // in trusted.sip
	trustPhone   = netip.MustParseAddr("198.51.100.21") // knocks, then chats
	trustScanner = netip.MustParseAddr("203.0.113.11")
)

func trustSIP(method, uri, display, ua, body string, n int) []byte {
	return []byte(fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-t%d\r\nFrom: \"%s\" <sip:+15550001@carrier.example>;tag=%d\r\nTo: <%s>\r\nCall-ID: trust-%d@lab\r\nCSeq: 1 %s\r\nUser-Agent: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		method, uri, n, display, n, uri, n, method, ua, len(body), body))
}

// trustCapture writes what a trusted trunk, a phone that knocks and a
// scanner send, 10 ms apart.
func trustCapture(t *testing.T) string {
	t.Helper()
	srv := labLocal[0]
	var pkts [][]byte
	n := 0
	add := func(src netip.Addr, payload []byte) {
		n++
		pkts = append(pkts, whole4(src, srv, 17, l4(17, src, srv, payload)))
	}
	// The trunk: INVITEs by IP (no hostname), a caller named
	// "friendly-scanner", a body naming sipvicious, 40 at once.
	for i := 0; i < 40; i++ {
		add(trustTrunk, trustSIP("INVITE", "sip:+15551234@192.0.2.10", "friendly-scanner", "Cisco-SIPGateway/IOS-15", "v=0 sipvicious", n))
	}
	// The phone knocks (twice: with nftables guard admits after the
	// kernel dropped the first), then chats about scanners.
	add(trustPhone, trustSIP("REGISTER", "sip:"+labHost, "Alice", "Zoiper rv2.10.20.4", "", n))
	add(trustPhone, trustSIP("REGISTER", "sip:"+labHost, "Alice", "Zoiper rv2.10.20.4", "", n))
	add(trustPhone, trustSIP("MESSAGE", "sip:1002@"+labHost, "Alice", "Zoiper rv2.10.20.4", "have you seen sipvicious? friendly-scanner too", n))
	add(trustPhone, trustSIP("INVITE", "sip:1002@"+labHost, "friendly-scanner", "Zoiper rv2.10.20.4", "", n))
	// A scanner.
	add(trustScanner, trustSIP("OPTIONS", "sip:100@192.0.2.10", "", "friendly-scanner", "", n))
	add(trustScanner, trustSIP("OPTIONS", "sip:101@192.0.2.10", "", "friendly-scanner", "", n))

	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, ip := range pkts {
		eth := make([]byte, 14, 14+len(ip))
		copy(eth[0:6], []byte{2, 0, 0, 0, 0, 0x10})
		copy(eth[6:12], []byte{2, 0, 0, 0, 0, 0x01})
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		eth = append(eth, ip...)
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * 10 * time.Millisecond), CaptureLength: len(eth), Length: len(eth)}
		if err := w.WritePacket(ci, eth); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "trust.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTrustedReplay: replay of the compiled rulesets of the lab policy with
// a trunk in trusted.sip gives the same verdicts on both backends (guard's
// inspector included for nftables): the trunk's 40 INVITEs by IP, with a
// caller named "friendly-scanner", all pass and ban nobody; the admitted
// phone's chat MESSAGE and INVITE pass and ban nobody; the scanner is
// banned at its first packet.
func TestTrustedReplay(t *testing.T) {
	path := trustCapture(t)
	lab, err := os.ReadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse("trunk.yaml", append(lab, []byte("\ntrusted:\n  sip: [198.51.100.50]\n")...))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			rs, err := compile.Compile(p, compile.Options{Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			prog, err := engine.Compile(rs, b)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := replay.Run(prog, []replay.Input{{Name: "trust.pcap", R: f}}, labOptions(p, b))
			if err != nil {
				t.Fatal(err)
			}
			banned := func(a netip.Addr) bool {
				s := rep.SourceOf(a)
				if s == nil {
					return false
				}
				for _, l := range []string{replay.ListScanner, replay.ListTrapped} {
					if _, ok := s.InList(l); ok {
						return true
					}
				}
				return false
			}
			if s := rep.SourceOf(trustTrunk); s == nil || s.Packets != 40 || s.Accepted != 40 || banned(trustTrunk) {
				t.Errorf("trusted trunk: want its 40 INVITEs accepted and no ban, got %+v", s)
			}
			s := rep.SourceOf(trustPhone)
			if s == nil {
				t.Fatal("no report of the phone")
			}
			if _, ok := s.InList(replay.ListAdmitted); !ok {
				t.Errorf("the phone was not admitted: %+v", s)
			}
			for _, m := range []string{"MESSAGE", "INVITE"} {
				if s.Methods[m] == nil || s.Methods[m].Accepted != 1 {
					t.Errorf("the admitted phone's %s was not accepted: %+v", m, s.Methods[m])
				}
			}
			if banned(trustPhone) {
				t.Error("the admitted phone was banned for what it wrote")
			}
			if s := rep.SourceOf(trustScanner); s == nil || s.Accepted != 0 || !banned(trustScanner) {
				t.Errorf("scanner: want banned and nothing accepted, got %+v", s)
			}
		})
	}
}
