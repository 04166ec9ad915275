package replay_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/replay"
)

// A fragmented capture, made in the test: large SIP datagrams over UDP
// split into IP fragments, IPv4 and IPv6, with the knock hostname or a
// scanner signature in the second fragment, split across the fragment
// boundary, fragments out of order, duplicated, overlapping, a datagram
// that never completes, fragmented ICMP echoes and an IPv6 atomic fragment.

const labHost = "pbx.example-secret.net"

var (
	fragPhone        = netip.MustParseAddr("198.51.100.31") // hostname in the second fragment
	fragSplit        = netip.MustParseAddr("198.51.100.32") // hostname across the boundary
	fragReorder      = netip.MustParseAddr("198.51.100.33") // second fragment first, duplicated
	fragOverlap      = netip.MustParseAddr("198.51.100.34") // overlapping fragments
	fragIncomplete   = netip.MustParseAddr("198.51.100.35") // first fragment only
	fragPing         = netip.MustParseAddr("198.51.100.36") // fragmented echo request
	fragScanner      = netip.MustParseAddr("203.0.113.50")  // signature in the second fragment
	fragPhone6       = netip.MustParseAddr("2001:db8:51::31")
	fragSplit6       = netip.MustParseAddr("2001:db8:51::32")
	fragPing6        = netip.MustParseAddr("2001:db8:51::36")
	fragFirstPayload = 1480 // IPv4 payload bytes in a first fragment (1500-byte MTU)
)

// sipDatagram is a SIP request whose text puts marker so that it starts at
// UDP payload offset at (padding with a header before it).
func sipDatagram(method, marker string, at, size int) []byte {
	head := method + " sip:1001@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-f\r\n" +
		"From: <sip:1001@192.0.2.10>;tag=1\r\nTo: <sip:1001@192.0.2.10>\r\nCall-ID: frag@lab\r\nCSeq: 1 " + method + "\r\n"
	pad := at - len(head) - len("X-Pad: ") - 2 - len("X-Mark: ")
	if pad < 0 {
		panic("marker too early")
	}
	msg := head + "X-Pad: " + strings.Repeat("a", pad) + "\r\nX-Mark: " + marker + "\r\n"
	if i := strings.Index(msg, marker); i != at {
		panic("marker misplaced")
	}
	tail := "Content-Length: 0\r\n\r\n"
	if n := size - len(msg) - len(tail) - len("X-Fill: \r\n"); n > 0 {
		msg += "X-Fill: " + strings.Repeat("b", n) + "\r\n"
	}
	return []byte(msg + tail)
}

func csum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// l4 builds a UDP datagram (sport/dport 5060) or an ICMP / ICMPv6 echo
// request with its checksum, for src -> dst.
func l4(proto uint8, src, dst netip.Addr, payload []byte) []byte {
	var h []byte
	switch proto {
	case 17:
		h = make([]byte, 8, 8+len(payload))
		binary.BigEndian.PutUint16(h[0:], 5060)
		binary.BigEndian.PutUint16(h[2:], 5060)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	case 1:
		h = []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}
	case 58:
		h = []byte{128, 0, 0, 0, 0x12, 0x34, 0, 1}
	}
	b := append(h, payload...)
	var sum uint32
	if proto != 1 {
		sum = csum(sum, src.AsSlice())
		sum = csum(sum, dst.AsSlice())
		sum += uint32(proto) + uint32(len(b))
	}
	c := fold(csum(sum, b))
	if c == 0 && proto == 17 {
		c = 0xffff
	}
	off := 6
	if proto != 17 {
		off = 2
	}
	binary.BigEndian.PutUint16(b[off:], c)
	return b
}

// frag4 is one IPv4 fragment of the L4 datagram d: bytes [off, end).
func frag4(src, dst netip.Addr, proto uint8, id uint16, d []byte, off, end int, mf bool) []byte {
	ip := make([]byte, 20, 20+end-off)
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+end-off))
	binary.BigEndian.PutUint16(ip[4:], id)
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(ip[6:], fo)
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], dst.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], fold(csum(0, ip)))
	return append(ip, d[off:end]...)
}

// frag6 is one IPv6 fragment (fragment header right after the fixed header).
func frag6(src, dst netip.Addr, proto uint8, id uint32, d []byte, off, end int, mf bool) []byte {
	ip := make([]byte, 48, 48+end-off)
	ip[0], ip[6], ip[7] = 0x60, 44, 64
	binary.BigEndian.PutUint16(ip[4:], uint16(8+end-off))
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	ip[40] = proto
	fo := uint16(off)
	if mf {
		fo |= 1
	}
	binary.BigEndian.PutUint16(ip[42:], fo)
	binary.BigEndian.PutUint32(ip[44:], id)
	return append(ip, d[off:end]...)
}

// whole4 is an unfragmented IPv4 datagram.
func whole4(src, dst netip.Addr, proto uint8, d []byte) []byte {
	return frag4(src, dst, proto, 0, d, 0, len(d), false)
}

func whole6(src, dst netip.Addr, proto uint8, d []byte) []byte {
	ip := frag6(src, dst, proto, 0, d, 0, len(d), false)
	// No fragment header: move the payload up.
	out := append(ip[:40:40], d...)
	out[6] = proto
	binary.BigEndian.PutUint16(out[4:], uint16(len(d)))
	return out
}

// fragCapture writes the fragmented capture and returns its path.
func fragCapture(t *testing.T) string {
	t.Helper()
	srv4, srv6 := labLocal[0], labLocal[1]
	var pkts [][]byte
	add := func(b ...[]byte) { pkts = append(pkts, b...) }
	opts := func(src netip.Addr) []byte {
		d := l4(17, src, srv4, sipDatagram("OPTIONS", "probe", 260, 360))
		if src.Is6() {
			return whole6(src, srv6, 17, l4(17, src, srv6, sipDatagram("OPTIONS", "probe", 260, 360)))
		}
		return whole4(src, srv4, 17, d)
	}
	// The knock in the second fragment: UDP payload offset 1500 is IP
	// payload offset 1508, past the first fragment's 1480 bytes.
	reg := func(src netip.Addr, at int) []byte {
		return l4(17, src, srv4, sipDatagram("REGISTER", labHost, at, 1800))
	}
	d := reg(fragPhone, 1500)
	add(frag4(fragPhone, srv4, 17, 101, d, 0, fragFirstPayload, true), frag4(fragPhone, srv4, 17, 101, d, fragFirstPayload, len(d), false), opts(fragPhone))
	// Split: the hostname starts 5 bytes before the boundary.
	d = reg(fragSplit, fragFirstPayload-8-5)
	add(frag4(fragSplit, srv4, 17, 102, d, 0, fragFirstPayload, true), frag4(fragSplit, srv4, 17, 102, d, fragFirstPayload, len(d), false), opts(fragSplit))
	// Out of order, the second fragment twice, then a piece of it again.
	d = reg(fragReorder, 1500)
	second := frag4(fragReorder, srv4, 17, 103, d, fragFirstPayload, len(d), false)
	add(second, second, frag4(fragReorder, srv4, 17, 103, d, fragFirstPayload, fragFirstPayload+64, true),
		frag4(fragReorder, srv4, 17, 103, d, 0, fragFirstPayload, true), opts(fragReorder))
	// Overlap: the second fragment starts 8 bytes early; the queue dies,
	// the proper second fragment then opens a queue that never completes.
	d = reg(fragOverlap, 1500)
	add(frag4(fragOverlap, srv4, 17, 104, d, 0, fragFirstPayload, true), frag4(fragOverlap, srv4, 17, 104, d, fragFirstPayload-8, len(d), false),
		frag4(fragOverlap, srv4, 17, 104, d, fragFirstPayload, len(d), false), opts(fragOverlap))
	// Never completed.
	d = reg(fragIncomplete, 1500)
	add(frag4(fragIncomplete, srv4, 17, 105, d, 0, fragFirstPayload, true), opts(fragIncomplete))
	// A scanner's signature in the second fragment.
	d = l4(17, fragScanner, srv4, sipDatagram("OPTIONS", "friendly-scanner", 1500, 1700))
	add(frag4(fragScanner, srv4, 17, 106, d, 0, fragFirstPayload, true), frag4(fragScanner, srv4, 17, 106, d, fragFirstPayload, len(d), false), opts(fragScanner))
	// A fragmented echo request: "-f" sees no fragment once reassembled.
	d = l4(1, fragPing, srv4, bytes.Repeat([]byte{0x5a}, 2400))
	add(frag4(fragPing, srv4, 1, 107, d, 0, fragFirstPayload, true), frag4(fragPing, srv4, 1, 107, d, fragFirstPayload, len(d), false))

	// IPv6: 1448 payload bytes in a first fragment (1500-byte MTU).
	const first6 = 1448
	reg6 := func(src netip.Addr, at int) []byte {
		return l4(17, src, srv6, sipDatagram("REGISTER", labHost, at, 1800))
	}
	d = reg6(fragPhone6, 1500)
	add(frag6(fragPhone6, srv6, 17, 201, d, 0, first6, true), frag6(fragPhone6, srv6, 17, 201, d, first6, len(d), false), opts(fragPhone6))
	d = reg6(fragSplit6, first6-8-5)
	add(frag6(fragSplit6, srv6, 17, 202, d, 0, first6, true), frag6(fragSplit6, srv6, 17, 202, d, first6, len(d), false), opts(fragSplit6))
	d = l4(58, fragPing6, srv6, bytes.Repeat([]byte{0x5a}, 2400))
	add(frag6(fragPing6, srv6, 58, 203, d, 0, first6, true), frag6(fragPing6, srv6, 58, 203, d, first6, len(d), false))
	// An atomic fragment (offset 0, no more fragments): reassembled at
	// once, without its fragment header.
	d = l4(17, fragPhone6, srv6, sipDatagram("OPTIONS", "probe", 260, 360))
	add(frag6(fragPhone6, srv6, 17, 204, d, 0, len(d), false))

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
		et := uint16(0x0800)
		if ip[0]>>4 == 6 {
			et = 0x86dd
		}
		binary.BigEndian.PutUint16(eth[12:], et)
		eth = append(eth, ip...)
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * 20 * time.Millisecond), CaptureLength: len(eth), Length: len(eth)}
		if err := w.WritePacket(ci, eth); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "fragments.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFragmentsReport: the engine reassembles before the raw table. The
// hostname in a second fragment admits the phone; split across the
// boundary, Boyer-Moore (each fragment a block) misses it; overlapping
// and incomplete datagrams never reach a table; the fragmented echo is
// accepted as an echo, not dropped as a fragment.
func TestFragmentsReport(t *testing.T) {
	path := fragCapture(t)
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			p, prog := labProgram(t, b)
			opt := labOptions(p, b)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := replay.Run(prog, []replay.Input{{Name: "fragments.pcap", R: f}}, opt)
			if err != nil {
				t.Fatal(err)
			}
			checkFragmentReport(t, b, rep)
		})
	}
}

func checkFragmentReport(t *testing.T, b backend.Name, rep *replay.Report) {
	t.Helper()
	admitted := func(a netip.Addr) bool {
		s := rep.SourceOf(a)
		if s == nil {
			return false
		}
		_, ok := s.InList(replay.ListAdmitted)
		return ok
	}
	for _, a := range []netip.Addr{fragPhone, fragReorder, fragPhone6} {
		if !admitted(a) {
			t.Errorf("%s (hostname in the second fragment) not admitted", a)
		}
		// (With nftables guard admits after the kernel dropped the knock.)
		if s := rep.SourceOf(a); s == nil || s.Methods["OPTIONS"] == nil || s.Methods["OPTIONS"].Accepted != s.Methods["OPTIONS"].Seen {
			t.Errorf("%s: SIP requests dropped after the knock: %+v", a, s)
		}
	}
	if b == backend.IPTables {
		// xt_string's bm searches each fragment alone.
		for _, a := range []netip.Addr{fragSplit, fragSplit6} {
			if admitted(a) {
				t.Errorf("%s (hostname split across fragments) admitted; bm cannot see it", a)
			}
		}
	}
	for _, a := range []netip.Addr{fragOverlap, fragIncomplete} {
		s := rep.SourceOf(a)
		if s == nil || s.Packets != 1 || s.Accepted != 0 || s.SIPRequests != 1 {
			t.Errorf("%s: want only its unfragmented OPTIONS evaluated (and dropped), got %+v", a, s)
		}
	}
	if s := rep.SourceOf(fragScanner); s == nil || s.Accepted != 0 {
		t.Errorf("scanner with its signature in the second fragment: %+v", s)
	} else if _, ok := s.InList(replay.ListScanner); !ok {
		t.Errorf("scanner with its signature in the second fragment not banned: %+v", s)
	}
	for _, a := range []netip.Addr{fragPing, fragPing6} {
		s := rep.SourceOf(a)
		if s == nil || s.Packets != 1 || s.Accepted != 1 || s.Bytes < 2400 {
			t.Errorf("%s: want one reassembled echo request accepted, got %+v", a, s)
		}
	}
	for _, r := range rep.Rules {
		if strings.Contains(r.Text, "fragmented ICMP") || strings.Contains(r.Text, "frag-off") {
			if r.Packets != 0 {
				t.Errorf("%s: %d packets; reassembled datagrams are no fragments", r.Text, r.Packets)
			}
		}
	}
	if rep.Held != 11 {
		t.Errorf("fragments held: %d, want 11 (all but the last of each completed datagram, the incomplete ones)", rep.Held)
	}
	if rep.Discarded != 3 {
		t.Errorf("fragments discarded: %d, want 3 (a duplicate, a piece inside a run, the overlap)", rep.Discarded)
	}
}

// TestKernelFragments replays the fragmented capture into the kernel with
// both backends and compares the counters (as TestKernelDifferential
// does), then checks the kernel's admitted set (iptables) against the
// report.
func TestKernelFragments(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "ipset", "nft")
	path := fragCapture(t)
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			differential(t, b, path, func(l *kernelLab, rep *replay.Report) {
				if b != backend.IPTables {
					return
				}
				for _, set := range []string{"sipwall-admitted4", "sipwall-admitted6", "sipwall-scanners4"} {
					out := nstest.Run(t, l.srv, "ipset", "list", set)
					for _, a := range []netip.Addr{fragPhone, fragSplit, fragReorder, fragOverlap, fragIncomplete, fragScanner, fragPhone6, fragSplit6} {
						if a.Is4() != strings.HasSuffix(set, "4") {
							continue
						}
						inKernel := strings.Contains(out, "\n"+a.String()+"\n") || strings.Contains(out, "\n"+a.String()+" ")
						list := replay.ListAdmitted
						if strings.Contains(set, "scanners") {
							list = replay.ListScanner
						}
						inReport := false
						if s := rep.SourceOf(a); s != nil {
							_, inReport = s.InList(list)
						}
						if inKernel != inReport {
							t.Errorf("%s in %s: kernel %v, report %v", a, set, inKernel, inReport)
						}
					}
					t.Logf("%s:\n%s", set, out)
				}
			})
		})
	}
}

// TestKernelHashlimitFull checks what xt_hashlimit does when its table is
// full: the new source's packet is dropped at once (hotdrop), counted by
// no rule and no policy, and a source in the table still passes. The
// table holds max(--hashlimit-htable-max, --hashlimit-htable-size)
// entries (htable_create), the size defaulting to 8192 buckets on a
// machine with over 1 GB of memory: a max of 2 alone does not bound it.
// The engine models both (engine.TestHashlimitFullTable).
func TestKernelHashlimitFull(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "iptables-save")
	l := newKernelLab(t)
	for _, c := range []struct {
		opts, accept string
	}{
		{"--hashlimit-htable-max 2 --hashlimit-htable-size 2", "[3:87]"},
		{"--hashlimit-htable-max 2", "[4:116]"},
	} {
		rules := `*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -m hashlimit --hashlimit-above 100/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name difftest-` + fmt.Sprint(len(c.opts)) + ` ` + c.opts + ` --hashlimit-htable-expire 60000 -j DROP
-A INPUT -p udp -j ACCEPT
COMMIT
`
		if _, err := netns.Run(context.Background(), l.srv, strings.NewReader(rules), "iptables-restore"); err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.1"} {
			a := netip.MustParseAddr(src)
			ip := whole4(a, labLocal[0], 17, l4(17, a, labLocal[0], []byte("x")))
			if err := l.send(&kframe{dir: engine.In, ip: ip, dst: labLocal[0]}); err != nil {
				t.Fatal(err)
			}
		}
		out := nstest.Run(t, l.srv, "iptables-save", "-c", "-t", "filter")
		var hl, acc, pol string
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, ":INPUT"):
				pol = strings.Fields(line)[2]
			case strings.Contains(line, "hashlimit"):
				hl = strings.Fields(line)[0]
			case strings.Contains(line, "-j ACCEPT"):
				acc = strings.Fields(line)[0]
			}
		}
		if hl != "[0:0]" || acc != c.accept || pol != "[0:0]" {
			t.Errorf("%s: counters: hashlimit %s, accept %s, policy %s; want [0:0], %s, [0:0]\n%s", c.opts, hl, acc, pol, c.accept, out)
		}
	}
}
