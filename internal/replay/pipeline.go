package replay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/sip"
)

// A batch carries decoded frames from the producer to the engine. Its
// frames' bytes are copied into one arena of fixed capacity, so that the
// packets stay valid while the reader moves on and nothing is allocated
// once every batch has been used.
const (
	nBatches    = 8
	batchFrames = 256
	arenaSize   = 1 << 18
)

type batch struct {
	frames []frame
	n      int
	arena  []byte
	read   int64 // bytes read from the captures so far
}

// frame is one captured frame, decoded, with what the report needs of it
// that depends on its bytes alone.
type frame struct {
	pkt    packet.Packet
	file   string
	number int
	ts     time.Time
	eval   bool // decoded far enough to be evaluated
	dir    engine.Direction
	local  bool // to or from a local address
	// A SIP request to the host, scanned ahead (scanned is false when the
	// frame is not one, or the scan is left to the engine's side).
	scanned bool
	req     sipRequest
	reqOK   bool
	host    int8 // the payload carries a hostname: 1, 0; -1 not looked for
	// The program's string matches on the packet (engine.Input.Strings),
	// and the source's slot in the hints and in the runner's cache.
	strs    uint64
	strsSet bool
	hint    uint32
}

// stringHints tell the producer which sources' string matches are worth
// computing ahead: a slot (by a hash of the source address) is set when
// the engine did not use the matches computed ahead for a packet of such a
// source (a banned scanner's packets are dropped before any string
// match), and cleared when it had to compute them itself. They only decide
// where the matches are computed, never their results.
type stringHints [1 << 14]atomic.Bool

func hintSlot(a netip.Addr) uint32 {
	var x uint64
	if a.Is4() {
		b := a.As4()
		x = uint64(binary.LittleEndian.Uint32(b[:])) * 0x9e3779b97f4a7c15
	} else {
		b := a.As16()
		x = binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:])*0xc2b2ae3d27d4eb4f
	}
	return uint32(x>>50) & (1<<14 - 1)
}

func newBatch() *batch {
	return &batch{frames: make([]frame, batchFrames), arena: make([]byte, 0, arenaSize)}
}

type producer struct {
	r       *runner
	streams []*stream
	advance func(*stream)
	warn    func(error)
	hosts   []foldFinder
	msg     sip.Message
	ahead   bool // compute string matches ahead
}

func (pr *producer) run(full chan<- *batch, free <-chan *batch) {
	defer close(full)
	for _, s := range pr.streams {
		pr.advance(s)
	}
	rep := pr.r.rep
	b := <-free
	b.n, b.arena = 0, b.arena[:0]
	send := func() {
		var read int64
		for _, s := range pr.streams {
			read += s.cnt.n
		}
		b.read = read
		full <- b
		b = <-free
		b.n, b.arena = 0, b.arena[:0]
		// The string matches are computed ahead only while the engine has
		// a batch waiting: when it has none, the reader is the slower side
		// and leaves them to the engine.
		pr.ahead = len(full) > 0
	}
	for {
		// The stream with the earliest packet (captures are merged).
		var cur *stream
		for _, s := range pr.streams {
			if s.ok && (cur == nil || s.rec.Timestamp.Before(cur.rec.Timestamp)) {
				cur = s
			}
		}
		if cur == nil {
			break
		}
		if b.n == len(b.frames) || len(b.arena)+len(cur.rec.Data) > cap(b.arena) {
			send()
		}
		rep.Frames++
		f := &b.frames[b.n]
		b.n++
		off := len(b.arena)
		b.arena = append(b.arena, cur.rec.Data...)
		data := b.arena[off:len(b.arena):len(b.arena)]
		f.file, f.number, f.ts = cur.name, cur.rec.Number, cur.rec.Timestamp
		f.eval, f.scanned = false, false
		p := &f.pkt
		if err := packet.Decode(cur.rec.LinkType, data, p); err != nil && p.IPVersion == 0 || err != nil && !p.Layers.Has(packet.LayerIPv4) && !p.Layers.Has(packet.LayerIPv6) {
			rep.undecoded++
			pr.warn(fmt.Errorf("%s: packet %d: %v (skipped)", cur.name, cur.rec.Number, err))
		} else {
			if err != nil {
				// The IP header is sound; the transport header is not. The
				// kernel would see the packet as it is: evaluate it.
				pr.warn(fmt.Errorf("%s: packet %d: %v (evaluated as captured)", cur.name, cur.rec.Number, err))
			}
			f.eval = true
			pr.prepare(f)
		}
		pr.advance(cur)
	}
	if b.n > 0 {
		send()
	}
}

// prepare finds the frame's direction and scans a SIP request to the host
// (a fragment is left to the engine's side: the reassembled datagram is
// what counts).
func (pr *producer) prepare(f *frame) {
	r, p := pr.r, &f.pkt
	f.strsSet = false
	switch {
	case r.local(p.Dst):
		f.dir, f.local = engine.In, true
	case r.local(p.Src):
		f.dir, f.local = engine.Out, true
	default:
		f.local = false
		return
	}
	f.hint = hintSlot(p.Src)
	if f.dir != engine.In || p.Fragmented {
		return
	}
	if !sipCandidate(p) {
		return
	}
	if r.prog.HasStrings() {
		if pr.ahead && !r.hints[f.hint].Load() {
			f.strs, f.strsSet = r.prog.StringMatches(p), true
		}
	}
	f.scanned = true
	f.req, f.reqOK = scanRequest(p.Payload, &pr.msg)
	f.host = -1
	if !f.reqOK {
		return
	}
	if f.req.register {
		f.host = 0
		if carries(pr.hosts, p.Payload) {
			f.host = 1
		}
	}
}

func sipCandidate(p *packet.Packet) bool {
	return len(p.Payload) > 0 && (p.Protocol == packet.ProtoUDP || p.Protocol == packet.ProtoTCP) && isMethodStart(p.Payload[0])
}

func carries(hosts []foldFinder, payload []byte) bool {
	for i := range hosts {
		if hosts[i].in(payload) {
			return true
		}
	}
	return false
}
