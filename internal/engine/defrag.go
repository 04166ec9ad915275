package engine

import (
	"encoding/binary"
	"time"

	"github.com/sipwall/sipwall/internal/packet"
)

// IP reassembly before the raw table.
//
// Every sipwall ruleset matches on conntrack state, so nf_defrag_ipv4 and
// nf_defrag_ipv6 are loaded and run at priority -400 in PREROUTING and
// OUTPUT, before raw (-300): a fragment is queued (stolen) and never seen
// by a table; when the last piece arrives, the whole datagram goes through
// raw, conntrack and filter once, counted once with its full length, and
// "-f" / "ip frag-off" no longer match it. The queueing follows
// net/ipv4/ip_fragment.c, net/ipv4/inet_fragment.c and
// net/ipv6/netfilter/nf_conntrack_reasm.c:
//
//   - queues are keyed by addresses, identification, direction (defrag
//     user) and, for IPv4, protocol; a queue lives ipfrag_time (30 s, IPv4)
//     or nf_conntrack_frag6_timeout (60 s, IPv6) from its first fragment
//     and is then dropped, whatever arrived;
//   - a fragment that finds no queue while the family's fragment memory is
//     above its high threshold (4 MB) is dropped, and memory is freed only
//     by reassembly and expiry (low_thresh is obsolete since Linux 4.17);
//   - inet_frag_queue_insert: a fragment inside an existing run of
//     contiguous fragments is a duplicate (dropped, the queue kept); one
//     that partly overlaps kills the queue; a last fragment whose end
//     disagrees with what arrived kills the queue (IPv4) or is dropped
//     (IPv6); a non-last fragment not a multiple of 8 is trimmed (IPv4) or
//     kills the queue and passes unreassembled (IPv6);
//   - the reassembled datagram keeps the first fragment's header (IPv6:
//     without the fragment header) and is dropped when longer than 65535
//     bytes or when its fragments mix ECN-capable and not-ECT codepoints.
//
// The datagram is handed to the string matches as one block per fragment,
// as skb_seq_read walks a reassembled skb (its fragments hang on the
// frag_list; conntrack's defrag does not coalesce them).
//
// Not modelled: ipfrag_max_dist (an IPv4 queue restarted when 64 other
// fragments of its source arrive in between), and the kernel's exact
// memory accounting (skb truesize depends on the driver; it is estimated).

const (
	ipfragTime     = int64(30 * time.Second) // net.ipv4.ipfrag_time
	frag6Time      = int64(60 * time.Second) // net.netfilter.nf_conntrack_frag6_timeout
	fragHighThresh = 4 << 20                 // ipfrag_high_thresh, nf_conntrack_frag6_high_thresh
	fragQueueSize  = 192                     // sizeof(struct ipq) / struct frag_queue, about
	maxDatagram    = 65535
)

// fragTruesize estimates the memory the kernel charges for a fragment of
// an n-byte datagram received on Ethernet: the skb's data area (kmalloc'd,
// with headroom and struct skb_shared_info) and the struct sk_buff.
func fragTruesize(n int) int {
	size := n + 14 + 64 + 320
	slab := 64
	for slab < size {
		switch {
		case slab == 64:
			slab = 96
		case slab == 96:
			slab = 128
		case slab == 128:
			slab = 192
		case slab == 192:
			slab = 256
		default:
			slab *= 2
		}
	}
	return slab + 256
}

type fragKey struct {
	src, dst addrKey
	id       uint32
	proto    uint8 // IPv4 only: the IPv6 key has no protocol
	v6       bool
	out      bool // the OUTPUT hook's defrag user
}

type span struct{ off, end int }

type fragQueue struct {
	key         fragKey
	gen         uint32
	live        bool
	expires     int64
	first, last bool
	len, meat   int
	mem         int
	ecn         uint8
	maxSize     int // IPv4: largest fragment; maxDF: largest with DF set
	maxDF       int
	hdr         []byte // the first fragment's header (IPv6: up to the fragment header)
	nhOff       int    // IPv6: offset in hdr of the next-header byte naming the fragment header
	nextHdr     uint8  // IPv6: the fragment header's next header
	data        []byte // the payload, by offset
	frags       []span // sorted by offset
	runs        []span // runs of contiguous fragments, sorted
	tailEnd     int    // end of the fragment queued last at the tail
}

type fifoEnt struct {
	q   *fragQueue
	gen uint32
	exp int64
}

// defrag is the reassembly state of both families.
type defrag struct {
	queues map[fragKey]*fragQueue
	free   []*fragQueue
	fifo   [2][]fifoEnt // by family, in expiry order (constant timeout)
	head   [2]int
	mem    [2]int
	buf    []byte
	blocks [][]byte
	pkt    packet.Packet
}

func newDefrag() *defrag {
	return &defrag{queues: map[fragKey]*fragQueue{}, buf: make([]byte, 0, 2048)}
}

// fragStatus is what the defrag hook did with a packet.
type fragStatus uint8

const (
	fragPass      fragStatus = iota // not queued: evaluate the packet as it is
	fragHeld                        // queued (stolen)
	fragDiscarded                   // dropped by the defrag hook
	fragDone                        // reassembled: d.pkt and d.blocks hold the datagram
)

// ipv6FragHeader finds the fragment header of an IPv6 datagram as
// find_prev_fhdr does: fh is its offset in nw, prev the offset of the
// next-header byte that names it.
func ipv6FragHeader(nw []byte) (fh, prev int, ok bool) {
	if len(nw) < 40 {
		return 0, 0, false
	}
	next, prev, off := nw[6], 6, 40
	for {
		switch next {
		case packet.ProtoFragment:
			if off+8 > len(nw) {
				return 0, 0, false
			}
			return off, prev, true
		case packet.ProtoHopOpts, packet.ProtoRouting, packet.ProtoDstOpts, packet.ProtoAH:
			if off+2 > len(nw) {
				return 0, 0, false
			}
			hl := (int(nw[off+1]) + 1) * 8
			if next == packet.ProtoAH {
				hl = (int(nw[off+1]) + 2) * 4
			}
			next, prev, off = nw[off], off, off+hl
		default:
			return 0, 0, false
		}
	}
}

func famSlot(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// expire drops the queues whose timer has fired by now.
func (d *defrag) expire(now int64) {
	for f := range d.fifo {
		q := d.fifo[f]
		h := d.head[f]
		for h < len(q) && q[h].exp <= now {
			if e := q[h]; e.q.live && e.q.gen == e.gen {
				d.kill(e.q)
			}
			q[h] = fifoEnt{}
			h++
		}
		if h == len(q) {
			d.fifo[f], h = q[:0], 0
		} else if h > 1024 && h*2 > len(q) {
			n := copy(q, q[h:])
			d.fifo[f], h = q[:n], 0
		}
		d.head[f] = h
	}
}

func (d *defrag) kill(q *fragQueue) {
	if !q.live {
		return
	}
	q.live = false
	delete(d.queues, q.key)
	d.mem[famSlot(q.key.v6)] -= q.mem
	d.free = append(d.free, q)
}

// find returns the queue of k, creating it unless the family is over its
// memory threshold (inet_frag_find).
func (d *defrag) find(k fragKey, now int64) *fragQueue {
	if q := d.queues[k]; q != nil {
		return q
	}
	f := famSlot(k.v6)
	if d.mem[f] > fragHighThresh {
		return nil
	}
	var q *fragQueue
	if n := len(d.free); n > 0 {
		q = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		q = &fragQueue{}
	}
	gen := q.gen + 1
	*q = fragQueue{key: k, gen: gen, live: true, hdr: q.hdr[:0], data: q.data[:0], frags: q.frags[:0], runs: q.runs[:0]}
	q.expires = now + ipfragTime
	if k.v6 {
		q.expires = now + frag6Time
	}
	q.mem = fragQueueSize
	d.mem[f] += fragQueueSize
	d.queues[k] = q
	d.fifo[f] = append(d.fifo[f], fifoEnt{q: q, gen: gen, exp: q.expires})
	return q
}

// insert is inet_frag_queue_insert.
const (
	insOK = iota
	insDup
	insOverlap
)

func (q *fragQueue) insert(off, end int) int {
	switch {
	case len(q.runs) == 0:
		q.runs = append(q.runs, span{off, end})
		q.tailEnd = end
	case q.tailEnd < end:
		if off < q.tailEnd {
			return insOverlap
		}
		if off == q.tailEnd {
			q.runs[len(q.runs)-1].end = end
		} else {
			q.runs = append(q.runs, span{off, end})
		}
		q.tailEnd = end
	default:
		i := 0
		for ; i < len(q.runs); i++ {
			r := q.runs[i]
			if end <= r.off {
				break
			}
			if off >= r.end {
				continue
			}
			if off >= r.off && end <= r.end {
				return insDup
			}
			return insOverlap
		}
		q.runs = append(q.runs, span{})
		copy(q.runs[i+1:], q.runs[i:])
		q.runs[i] = span{off, end}
	}
	i := len(q.frags)
	for i > 0 && q.frags[i-1].off > off {
		i--
	}
	q.frags = append(q.frags, span{})
	copy(q.frags[i+1:], q.frags[i:])
	q.frags[i] = span{off, end}
	return insOK
}

// put copies a fragment's payload to its place.
func (q *fragQueue) put(off, end int, payload []byte) {
	if end > len(q.data) {
		if end > cap(q.data) {
			nd := make([]byte, end, max(end, 2*cap(q.data)))
			copy(nd, q.data)
			q.data = nd
		} else {
			q.data = q.data[:end]
		}
	}
	n := copy(q.data[off:end], payload)
	clear(q.data[off+n : end]) // cut by the capture's snap length
}

// ecnBits maps an ECN codepoint to ip_frag_ecn's bit.
func ecnBits(tos uint8) uint8 { return 1 << (tos & 3) }

// ecnInvalid: ip_frag_ecn_table's 0xff entries (not-ECT mixed with ECT or CE).
func ecnInvalid(m uint8) bool { return m&1 != 0 && m&^1 != 0 }

// add runs the defrag hook on p.
func (d *defrag) add(p *packet.Packet, out bool, now int64) fragStatus {
	d.expire(now)
	if p.IPVersion == 4 {
		if !p.Fragmented {
			return fragPass
		}
		return d.add4(p, out, now)
	}
	nw := p.Network
	if len(nw) < 40 || binary.BigEndian.Uint16(nw[4:6]) == 0 {
		return fragPass // jumbo payload: no fragment header
	}
	fh, prev, ok := ipv6FragHeader(nw)
	if !ok {
		return fragPass
	}
	return d.add6(p, out, now, fh, prev)
}

func (d *defrag) add4(p *packet.Packet, out bool, now int64) fragStatus {
	k := fragKey{src: keyOf(p.Src), dst: keyOf(p.Dst), id: p.IPID, proto: p.Protocol, out: out}
	q := d.find(k, now)
	if q == nil {
		return fragDiscarded
	}
	ihl := int(p.IHL)
	off := int(p.FragOffset)
	end := off + p.L3Len - ihl
	if !p.MF {
		if end < q.len || (q.last && end != q.len) {
			d.kill(q)
			return fragDiscarded
		}
		q.last, q.len = true, end
	} else {
		end &^= 7
		if end > q.len {
			if q.last {
				d.kill(q)
				return fragDiscarded
			}
			q.len = end
		}
	}
	if end == off {
		d.kill(q)
		return fragDiscarded
	}
	switch q.insert(off, end) {
	case insDup:
		return fragDiscarded
	case insOverlap:
		d.kill(q)
		return fragDiscarded
	}
	q.put(off, end, p.Network[min(ihl, len(p.Network)):])
	q.meat += end - off
	q.ecn |= ecnBits(p.TOS)
	ts := fragTruesize(p.L3Len)
	q.mem += ts
	d.mem[0] += ts
	if off == 0 {
		q.first = true
		q.hdr = append(q.hdr[:0], p.Network[:ihl]...)
	}
	fs := end - off + ihl
	q.maxSize = max(q.maxSize, fs)
	if p.DF {
		q.maxDF = max(q.maxDF, fs)
	}
	if !q.first || !q.last || q.meat != q.len {
		return fragHeld
	}
	// ip_frag_reasm.
	total := len(q.hdr) + q.len
	if total > maxDatagram || ecnInvalid(q.ecn) {
		d.kill(q)
		return fragDiscarded
	}
	d.buf = append(d.buf[:0], q.hdr...)
	binary.BigEndian.PutUint16(d.buf[2:4], uint16(total))
	df := uint16(0)
	if q.maxDF == q.maxSize {
		df = 0x4000
	}
	binary.BigEndian.PutUint16(d.buf[6:8], df)
	d.buf[10], d.buf[11] = 0, 0
	binary.BigEndian.PutUint16(d.buf[10:12], ipChecksum(d.buf[:len(q.hdr)]))
	d.finish(q, len(q.hdr))
	return fragDone
}

func (d *defrag) add6(p *packet.Packet, out bool, now int64, fh, prev int) fragStatus {
	nw := p.Network
	fo := binary.BigEndian.Uint16(nw[fh+2 : fh+4])
	off := int(fo &^ 7)
	mf := fo&1 != 0
	if off == 0 && thdrTruncated(nw, fh) {
		// RFC 8200 4.5: a first fragment without the upper-layer header
		// is not reassembled (ipv6frag_thdr_truncated).
		return fragPass
	}
	k := fragKey{src: keyOf(p.Src), dst: keyOf(p.Dst), id: binary.BigEndian.Uint32(nw[fh+4 : fh+8]), v6: true, out: out}
	q := d.find(k, now)
	if q == nil {
		return fragDiscarded
	}
	plen := int(binary.BigEndian.Uint16(nw[4:6]))
	end := off + plen - (fh + 8 - 40)
	if end > maxDatagram {
		return fragDiscarded
	}
	if !mf {
		if end < q.len || (q.last && end != q.len) {
			return fragDiscarded
		}
		q.last, q.len = true, end
	} else {
		if end&7 != 0 {
			d.kill(q)
			return fragPass
		}
		if end > q.len {
			if q.last {
				return fragDiscarded
			}
			q.len = end
		}
	}
	if end <= off {
		return fragDiscarded
	}
	switch q.insert(off, end) {
	case insDup:
		return fragDiscarded
	case insOverlap:
		d.kill(q)
		return fragDiscarded
	}
	q.put(off, end, nw[min(fh+8, len(nw)):])
	q.meat += end - off
	q.ecn |= ecnBits(p.TOS)
	ts := fragTruesize(p.L3Len)
	q.mem += ts
	d.mem[1] += ts
	if off == 0 {
		q.first = true
		q.hdr = append(q.hdr[:0], nw[:fh]...)
		q.nhOff, q.nextHdr = prev, nw[fh]
	}
	if !q.first || !q.last || q.meat != q.len {
		return fragHeld
	}
	// nf_ct_frag6_reasm: the fragment header is removed.
	plen = len(q.hdr) - 40 + q.len
	if plen > maxDatagram || ecnInvalid(q.ecn) {
		d.kill(q)
		return fragDiscarded
	}
	d.buf = append(d.buf[:0], q.hdr...)
	d.buf[q.nhOff] = q.nextHdr
	binary.BigEndian.PutUint16(d.buf[4:6], uint16(plen))
	d.finish(q, len(q.hdr))
	return fragDone
}

// finish appends the payload, cuts the blocks, decodes the datagram and
// frees the queue.
func (d *defrag) finish(q *fragQueue, hl int) {
	d.buf = append(d.buf, q.data[:q.len]...)
	d.blocks = d.blocks[:0]
	for i, f := range q.frags {
		lo := hl + f.off
		if i == 0 {
			lo = 0
		}
		d.blocks = append(d.blocks, d.buf[lo:hl+f.end])
	}
	d.kill(q)
	packet.Decode(packet.LinkRaw, d.buf, &d.pkt)
}

// thdrTruncated is ipv6frag_thdr_truncated for a first fragment.
func thdrTruncated(nw []byte, fh int) bool {
	next, off := nw[fh], fh+8
	for {
		switch next {
		case packet.ProtoHopOpts, packet.ProtoRouting, packet.ProtoDstOpts, packet.ProtoAH:
			if off+2 > len(nw) {
				return false // ipv6_skip_exthdr fails: not truncated by this test
			}
			hl := (int(nw[off+1]) + 1) * 8
			if next == packet.ProtoAH {
				hl = (int(nw[off+1]) + 2) * 4
			}
			next, off = nw[off], off+hl
			continue
		case packet.ProtoFragment:
			// A second fragment header: ipv6_skip_exthdr reads its offset;
			// a non-zero one ends the test.
			if off+8 > len(nw) {
				return false
			}
			if binary.BigEndian.Uint16(nw[off+2:off+4])&^7 != 0 {
				return false
			}
			next, off = nw[off], off+8
			continue
		case packet.ProtoNoNext:
			return false
		case packet.ProtoTCP:
			off += 20
		case packet.ProtoUDP:
			off += 8
		case packet.ProtoICMPv6:
			off += 8
		default:
			off++
		}
		return off > len(nw)
	}
}

// ipChecksum is the IPv4 header checksum.
func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
