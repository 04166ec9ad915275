package engine

import (
	"time"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
)

// Conntrack, close to nf_conntrack for the states a firewall matches on.
//
// TCP follows nf_conntrack_proto_tcp's state table (tcp_conntracks) with
// its default timeouts and loose pickup of mid-stream ACKs; sequence-window
// tracking is not modelled (as with nf_conntrack_tcp_be_liberal=1). UDP is
// 30 s until a reply is seen and 120 s for a stream (reply seen, still
// active after 2 s). ICMP echo, timestamp, information and address-mask
// requests open an entry (30 s) that their replies establish; ICMP errors
// are RELATED when the packet they quote belongs to a known entry and
// INVALID otherwise. Other protocols are tracked by address (600 s).
//
// A new entry is confirmed only when its first packet is accepted: a packet
// dropped in INPUT leaves no entry behind, as in the kernel.

type tcpState uint8

const (
	sNO tcpState = iota
	sSS
	sSR
	sES
	sFW
	sCW
	sLA
	sTW
	sCL
	sS2
	sIV // invalid transition (TCP_CONNTRACK_MAX)
	sIG // ignore
)

// tcpConntracks is tcp_conntracks[dir][flag index][old state].
var tcpConntracks = [2][6][10]tcpState{
	{ // ORIGINAL
		/* syn */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
		/* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
		/* fin */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		/* ack */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
		/* rst */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		/* none */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
	{ // REPLY
		/* syn */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
		/* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
		/* fin */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		/* ack */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
		/* rst */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		/* none */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
}

var tcpTimeouts = [10]time.Duration{
	sNO: 0, sSS: 2 * time.Minute, sSR: time.Minute, sES: 5 * 24 * time.Hour, sFW: 2 * time.Minute,
	sCW: time.Minute, sLA: 30 * time.Second, sTW: 2 * time.Minute, sCL: 10 * time.Second, sS2: 2 * time.Minute,
}

const (
	udpUnreplied = 30 * time.Second
	udpReplied   = 120 * time.Second
	icmpTimeout  = 30 * time.Second
	genericTO    = 600 * time.Second
)

// tcpFlagIndex is get_conntrack_index.
func tcpFlagIndex(f uint8) int {
	switch {
	case f&packet.TCPRst != 0:
		return 4
	case f&packet.TCPSyn != 0:
		if f&packet.TCPAck != 0 {
			return 1
		}
		return 0
	case f&packet.TCPFin != 0:
		return 2
	case f&packet.TCPAck != 0:
		return 3
	}
	return 5
}

// tcpValidFlags is tcp_valid_flags: combinations conntrack accepts at all.
func tcpValidFlags(f uint8) bool {
	f &^= packet.TCPEce | packet.TCPCwr | packet.TCPPsh
	switch f {
	case packet.TCPSyn, packet.TCPSyn | packet.TCPUrg, packet.TCPSyn | packet.TCPAck,
		packet.TCPRst, packet.TCPRst | packet.TCPAck,
		packet.TCPFin | packet.TCPAck, packet.TCPFin | packet.TCPAck | packet.TCPUrg,
		packet.TCPAck, packet.TCPAck | packet.TCPUrg:
		return true
	}
	return false
}

// flowKey is a conntrack tuple in one direction.
type flowKey struct {
	src, dst addrKey
	sp, dp   uint16
	proto    uint8
}

type ctEntry struct {
	orig      flowKey
	expires   int64
	state     tcpState
	seenReply bool
	assured   bool
	streamTS  int64
	confirmed bool
	// lastInDropped is set when the latest packet arriving on this flow
	// was dropped: the host would not answer it.
	lastInDropped bool
	used          bool
}

// conntrack is the table: both directions of an entry index the same slot.
type conntrack struct {
	max     int
	index   *flowTable // slot<<1 | direction
	slots   []ctEntry
	free    []int32
	dropped *flowTable // incoming flows dropped without an entry: time
	sweepAt int64
}

func newConntrack(max int) *conntrack {
	return &conntrack{max: max, index: newFlowTable(1024), dropped: newFlowTable(1024)}
}

func (k flowKey) reverse() flowKey {
	return flowKey{src: k.dst, dst: k.src, sp: k.dp, dp: k.sp, proto: k.proto}
}

// lookup finds the entry of k; dir is 1 when k is the reply direction.
func (ct *conntrack) lookup(k flowKey, now int64) (slot int32, dir int, ok bool) {
	i := ct.index.find(&k)
	if i < 0 {
		return 0, 0, false
	}
	v := int32(ct.index.ents[i].val)
	slot, dir = v>>1, int(v&1)
	if now >= ct.slots[slot].expires {
		ct.remove(slot)
		return 0, 0, false
	}
	return slot, dir, true
}

func (ct *conntrack) remove(slot int32) {
	e := &ct.slots[slot]
	ct.index.del(e.orig)
	ct.index.del(e.orig.reverse())
	*e = ctEntry{}
	ct.free = append(ct.free, slot)
}

// insert adds an unconfirmed entry; ok is false when the table is full.
func (ct *conntrack) insert(k flowKey, now int64) (int32, bool) {
	if len(ct.slots)-len(ct.free) >= ct.max {
		ct.sweep(now)
		if len(ct.slots)-len(ct.free) >= ct.max {
			return 0, false
		}
	}
	var slot int32
	if n := len(ct.free); n > 0 {
		slot = ct.free[n-1]
		ct.free = ct.free[:n-1]
	} else {
		ct.slots = append(ct.slots, ctEntry{})
		slot = int32(len(ct.slots) - 1)
	}
	ct.slots[slot] = ctEntry{orig: k, used: true}
	ct.index.put(k, int64(slot<<1))
	if r := k.reverse(); r != k {
		ct.index.put(r, int64(slot<<1|1))
	}
	return slot, true
}

// sweep frees expired entries; it runs at most once per 10 s of packet time.
func (ct *conntrack) maybeSweep(now int64) {
	if now < ct.sweepAt {
		return
	}
	ct.sweepAt = now + int64(10*time.Second)
	ct.sweep(now)
}

func (ct *conntrack) sweep(now int64) {
	for i := range ct.slots {
		e := &ct.slots[i]
		if e.used && now >= e.expires {
			ct.remove(int32(i))
		}
	}
	ct.dropped.deleteIf(func(t int64) bool { return now-t > int64(udpReplied) })
}

// ctResult is conntrack's verdict on a packet.
type ctResult struct {
	state   uint8 // ir.CTNew, ...
	slot    int32
	hasSlot bool
	created bool // a new, unconfirmed entry
	killed  int32
}

func icmpIsRequest(v6 bool, t uint8) (reply uint8, ok bool) {
	if v6 {
		switch t {
		case 128:
			return 129, true
		case 139:
			return 140, true
		}
		return 0, false
	}
	switch t {
	case 8:
		return 0, true
	case 13:
		return 14, true
	case 15:
		return 16, true
	case 17:
		return 18, true
	}
	return 0, false
}

func icmpIsReply(v6 bool, t uint8) bool {
	if v6 {
		return t == 129 || t == 140
	}
	return t == 0 || t == 14 || t == 16 || t == 18
}

func icmpIsError(v6 bool, t uint8) bool {
	if v6 {
		return t >= 1 && t <= 4
	}
	return t == 3 || t == 4 || t == 5 || t == 11 || t == 12
}

// icmpv6Untracked are the ICMPv6 types nf_conntrack_proto_icmpv6 leaves
// untracked (neighbour discovery, MLD).
func icmpv6Untracked(t uint8) bool {
	return t >= 130 && t <= 137 || t == 143
}

func timeoutFor(e *ctEntry, proto uint8) time.Duration {
	switch proto {
	case packet.ProtoTCP:
		return tcpTimeouts[e.state]
	case packet.ProtoUDP:
		return udpUnreplied
	case packet.ProtoICMP, packet.ProtoICMPv6:
		return icmpTimeout
	}
	return genericTO
}

// track runs conntrack on a packet (nf_conntrack_in).
func (ct *conntrack) track(c *pctx) ctResult {
	now := c.now
	ct.maybeSweep(now)
	p := c.pkt
	v6 := c.fam == ir.IPv6
	k := flowKey{src: c.srcKey, dst: c.dstKey, proto: p.Protocol}
	switch p.Protocol {
	case packet.ProtoTCP, packet.ProtoUDP:
		if !p.HasPorts() {
			return ctResult{state: ir.CTInvalid}
		}
		k.sp, k.dp = p.SrcPort, p.DstPort
	case packet.ProtoICMP, packet.ProtoICMPv6:
		if !c.hasICMP {
			return ctResult{state: ir.CTInvalid}
		}
		t := p.ICMPType
		if v6 && icmpv6Untracked(t) {
			return ctResult{state: CTUntracked}
		}
		if icmpIsError(v6, t) {
			return ct.related(c)
		}
		id := uint16(0)
		if len(p.Payload) >= 2 {
			id = uint16(p.Payload[0])<<8 | uint16(p.Payload[1])
		}
		k.sp = id
		if _, ok := icmpIsRequest(v6, t); !ok && !icmpIsReply(v6, t) {
			return ctResult{state: ir.CTInvalid}
		}
	}
	if p.Protocol == packet.ProtoTCP && !tcpValidFlags(p.TCPFlags) {
		return ctResult{state: ir.CTInvalid}
	}
	slot, dir, ok := ct.lookup(k, now)
	if ok && p.Protocol == packet.ProtoTCP && dir == 0 && tcpFlagIndex(p.TCPFlags) == 0 {
		// A SYN on a closed or closing connection reopens it.
		if s := ct.slots[slot].state; s == sTW || s == sCL {
			ct.remove(slot)
			ok = false
		}
	}
	if !ok {
		// A new connection.
		switch p.Protocol {
		case packet.ProtoTCP:
			if tcpConntracks[0][tcpFlagIndex(p.TCPFlags)][sNO] >= sIV {
				return ctResult{state: ir.CTInvalid}
			}
		case packet.ProtoICMP, packet.ProtoICMPv6:
			if _, req := icmpIsRequest(v6, p.ICMPType); !req {
				return ctResult{state: ir.CTInvalid}
			}
		}
		s, ok := ct.insert(k, now)
		if !ok {
			return ctResult{state: ir.CTInvalid}
		}
		e := &ct.slots[s]
		if p.Protocol == packet.ProtoTCP {
			e.state = tcpConntracks[0][tcpFlagIndex(p.TCPFlags)][sNO]
		}
		if p.Protocol == packet.ProtoUDP {
			e.streamTS = now + 2*int64(time.Second)
		}
		e.expires = now + int64(timeoutFor(e, p.Protocol))
		return ctResult{state: ir.CTNew, slot: s, hasSlot: true, created: true}
	}
	e := &ct.slots[slot]
	switch p.Protocol {
	case packet.ProtoTCP:
		ns := tcpConntracks[dir][tcpFlagIndex(p.TCPFlags)][e.state]
		switch ns {
		case sIV:
			return ctResult{state: ir.CTInvalid}
		case sIG:
			// Keep the state and the timeout; the packet belongs to the
			// connection.
		default:
			e.state = ns
			if dir == 1 && e.state >= sES {
				e.assured = true
			}
			e.expires = now + int64(tcpTimeouts[e.state])
		}
	case packet.ProtoUDP:
		if dir == 1 {
			e.seenReply = true
		}
		if e.seenReply {
			extra := udpUnreplied
			if now > e.streamTS {
				extra = udpReplied
				e.assured = true
			}
			e.expires = now + int64(extra)
		} else {
			e.expires = now + int64(udpUnreplied)
		}
	default:
		e.expires = now + int64(timeoutFor(e, p.Protocol))
	}
	if dir == 1 {
		e.seenReply = true
		return ctResult{state: ir.CTEstablished, slot: slot, hasSlot: true}
	}
	if e.seenReply {
		return ctResult{state: ir.CTEstablished, slot: slot, hasSlot: true}
	}
	return ctResult{state: ir.CTNew, slot: slot, hasSlot: true}
}

// related handles an ICMP error: RELATED when the datagram it quotes
// belongs to a known connection.
func (ct *conntrack) related(c *pctx) ctResult {
	p := c.pkt
	b := p.Payload // after the 4-byte ICMP header: 4 bytes unused, then the datagram
	if len(b) < 4 {
		return ctResult{state: ir.CTInvalid}
	}
	b = b[4:]
	var k flowKey
	var l4 []byte
	if c.fam == ir.IPv4 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return ctResult{state: ir.CTInvalid}
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return ctResult{state: ir.CTInvalid}
		}
		var s, d [4]byte
		copy(s[:], b[12:16])
		copy(d[:], b[16:20])
		k.src, k.dst = v4Key(s), v4Key(d)
		k.proto = b[9]
		l4 = b[ihl:]
	} else {
		if len(b) < 40 || b[0]>>4 != 6 {
			return ctResult{state: ir.CTInvalid}
		}
		copy(k.src[:], b[8:24])
		copy(k.dst[:], b[24:40])
		k.proto = b[6]
		l4 = b[40:]
	}
	switch k.proto {
	case packet.ProtoTCP, packet.ProtoUDP:
		if len(l4) < 4 {
			return ctResult{state: ir.CTInvalid}
		}
		k.sp = uint16(l4[0])<<8 | uint16(l4[1])
		k.dp = uint16(l4[2])<<8 | uint16(l4[3])
	case packet.ProtoICMP, packet.ProtoICMPv6:
		if len(l4) < 8 {
			return ctResult{state: ir.CTInvalid}
		}
		k.sp = uint16(l4[4])<<8 | uint16(l4[5])
	}
	slot, _, ok := ct.lookup(k, c.now)
	if !ok {
		return ctResult{state: ir.CTInvalid}
	}
	return ctResult{state: ir.CTRelated, slot: slot, hasSlot: true}
}

func v4Key(a [4]byte) addrKey {
	var k addrKey
	k[10], k[11] = 0xff, 0xff
	copy(k[12:], a[:])
	return k
}
