// Command mkcapture builds a large capture from the corpus captures, for
// measuring sipwall replay: every capture is repeated -copies times, copy k
// starting k×-gap after the first, with each client address (every address
// but the server's) rewritten into 11.0.0.0/8 so that the copies are
// distinct sources. -sources bounds the pool of rewritten addresses (copy k
// uses pool entry k mod -sources), so that a longer capture need not mean
// more sources. The output is a pcap (Ethernet, microsecond timestamps) in
// timestamp order; IPv4 header and TCP/UDP checksums are kept valid.
//
//	go run ./internal/replay/cmd/mkcapture -copies 100 -o /tmp/big.pcap
package main

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/packet"
)

type frame struct {
	off  time.Duration // from the capture's first packet
	data []byte
	wire int
	src  int // offset of the IPv4 source address in data, or -1
	dst  int
	l4   int // offset of the TCP/UDP checksum, or -1
}

type corpusCap struct {
	frames []frame
}

func main() {
	dir := flag.String("corpus", "../shared/corpus/pcap", "directory of the corpus captures")
	copies := flag.Int("copies", 100, "copies of every capture")
	sources := flag.Int("sources", 0, "pool of rewritten address sets (default: one per copy)")
	gap := flag.Duration("gap", 20*time.Millisecond, "start of copy k is k×gap")
	server := flag.String("server", "192.0.2.10", "the server's address (kept)")
	out := flag.String("o", "", "output `file`")
	flag.Parse()
	if *out == "" || *copies < 1 {
		fmt.Fprintln(os.Stderr, "mkcapture: -o FILE required, -copies ≥ 1")
		os.Exit(2)
	}
	if *sources <= 0 {
		*sources = *copies
	}
	srv := netip.MustParseAddr(*server)
	paths, _ := filepath.Glob(filepath.Join(*dir, "*.pcap"))
	sort.Strings(paths)
	if len(paths) == 0 {
		fail(fmt.Errorf("no capture in %s", *dir))
	}
	clients := map[netip.Addr]uint32{} // client address → index within a set
	clientIndex = clients
	var caps []*corpusCap
	for _, path := range paths {
		c, err := load(path, srv, clients)
		if err != nil {
			fail(err)
		}
		caps = append(caps, c)
	}
	if len(clients) > 32 {
		fail(fmt.Errorf("%d client addresses in the corpus; at most 32 per set", len(clients)))
	}
	if *sources*32 > 1<<24 {
		fail(fmt.Errorf("-sources %d: at most %d", *sources, 1<<19))
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		fail(err)
	}
	// Merge copies × captures in timestamp order.
	h := &cursorHeap{}
	for k := 0; k < *copies; k++ {
		for _, c := range caps {
			if len(c.frames) > 0 {
				heap.Push(h, &cursor{c: c, copy: k, start: time.Duration(k) * *gap})
			}
		}
	}
	buf := make([]byte, 0, 65536)
	n := 0
	for h.Len() > 0 {
		cur := (*h)[0]
		fr := &cur.c.frames[cur.i]
		buf = append(buf[:0], fr.data...)
		set := uint32(cur.copy % *sources)
		rewrite(buf, fr, set, srv)
		ts := base.Add(cur.start + fr.off)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(buf), Length: fr.wire}, buf); err != nil {
			fail(err)
		}
		n++
		cur.i++
		if cur.i == len(cur.c.frames) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	if err := bw.Flush(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "mkcapture: %s: %d packets, %d copies of %d captures, %d address sets of %d clients\n",
		*out, n, *copies, len(caps), *sources, len(clients))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkcapture:", err)
	os.Exit(1)
}

// load reads a capture and notes where each IPv4 frame's client address is.
func load(path string, srv netip.Addr, clients map[netip.Addr]uint32) (*corpusCap, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	rd, err := capture.NewReader(filepath.Base(path), fh)
	if err != nil {
		return nil, err
	}
	c := &corpusCap{}
	var first time.Time
	var p packet.Packet
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		if rec.LinkType != packet.LinkEthernet {
			return nil, fmt.Errorf("%s: link type %v; Ethernet expected", path, rec.LinkType)
		}
		if first.IsZero() {
			first = rec.Timestamp
		}
		fr := frame{off: rec.Timestamp.Sub(first), data: append([]byte(nil), rec.Data...), wire: rec.Length, src: -1, dst: -1, l4: -1}
		if packet.Decode(rec.LinkType, fr.data, &p); p.IPVersion == 4 && len(p.Network) >= 20 {
			ipOff := 14 + 4*int(p.VLANs)
			for _, a := range []struct {
				addr netip.Addr
				off  int
			}{{p.Src, ipOff + 12}, {p.Dst, ipOff + 16}} {
				if a.addr == srv || !a.addr.Is4() {
					continue
				}
				if _, ok := clients[a.addr]; !ok {
					clients[a.addr] = uint32(len(clients))
				}
				if a.off == ipOff+12 {
					fr.src = a.off
				} else {
					fr.dst = a.off
				}
			}
			ihl := int(p.Network[0]&15) * 4
			if !p.Fragmented || p.FragOffset == 0 {
				switch p.Protocol {
				case packet.ProtoTCP:
					if len(p.Network) >= ihl+18 {
						fr.l4 = ipOff + ihl + 16
					}
				case packet.ProtoUDP:
					if len(p.Network) >= ihl+8 && binary.BigEndian.Uint16(p.Network[ihl+6:]) != 0 {
						fr.l4 = ipOff + ihl + 6
					}
				}
			}
		}
		c.frames = append(c.frames, fr)
	}
	return c, nil
}

// clientIndex numbers the corpus' client addresses.
var clientIndex map[netip.Addr]uint32

// rewrite moves the frame's client address into 11.0.0.0/8 (set×32 +
// client index) and fixes the IPv4 header and TCP/UDP checksums.
func rewrite(b []byte, fr *frame, set uint32, srv netip.Addr) {
	for _, off := range []int{fr.src, fr.dst} {
		if off < 0 {
			continue
		}
		old := netip.AddrFrom4([4]byte(b[off : off+4]))
		idx, ok := clientIndex[old]
		if !ok {
			continue
		}
		v := 11<<24 | set<<5 | idx
		var na [4]byte
		binary.BigEndian.PutUint32(na[:], v)
		ipOff := fr.src - 12
		if fr.src < 0 {
			ipOff = fr.dst - 16
		}
		adjust(b[ipOff+10:ipOff+12], b[off:off+4], na[:])
		if fr.l4 >= 0 {
			adjust(b[fr.l4:fr.l4+2], b[off:off+4], na[:])
		}
		copy(b[off:off+4], na[:])
	}
}

// adjust updates a ones'-complement checksum for a 4-byte field changing
// from old to new (RFC 1624).
func adjust(sum, old, new []byte) {
	c := uint32(^binary.BigEndian.Uint16(sum))
	for i := 0; i < 4; i += 2 {
		c += uint32(^binary.BigEndian.Uint16(old[i:])) & 0xffff
		c += uint32(binary.BigEndian.Uint16(new[i:]))
	}
	for c > 0xffff {
		c = c&0xffff + c>>16
	}
	binary.BigEndian.PutUint16(sum, ^uint16(c))
}

type cursor struct {
	c     *corpusCap
	i     int
	copy  int
	start time.Duration
}

func (c *cursor) at() time.Duration { return c.start + c.c.frames[c.i].off }

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if a, b := h[i].at(), h[j].at(); a != b {
		return a < b
	}
	return h[i].copy < h[j].copy
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
