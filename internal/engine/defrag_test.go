package engine

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/packet"
)

// frag4 decodes an IPv4 UDP fragment from 198.51.100.1 to 192.0.2.10 of a
// datagram whose payload bytes are their offset mod 251.
func frag4(t *testing.T, id uint16, off, n int, mf bool) *packet.Packet {
	t.Helper()
	b := make([]byte, 20+n)
	b[0], b[8], b[9] = 0x45, 64, packet.ProtoUDP
	binary.BigEndian.PutUint16(b[2:], uint16(20+n))
	binary.BigEndian.PutUint16(b[4:], id)
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], fo)
	copy(b[12:], []byte{198, 51, 100, 1, 192, 0, 2, 10})
	for i := range n {
		b[20+i] = byte((off + i) % 251)
	}
	if off == 0 {
		binary.BigEndian.PutUint16(b[20:], 5060)
		binary.BigEndian.PutUint16(b[22:], 5060)
		binary.BigEndian.PutUint16(b[24:], 0) // length filled in by the test when needed
	}
	var p packet.Packet
	packet.Decode(packet.LinkRaw, b, &p)
	return &p
}

func frag6(t *testing.T, id uint32, off, n int, mf bool) *packet.Packet {
	t.Helper()
	b := make([]byte, 48+n)
	b[0], b[6], b[7] = 0x60, packet.ProtoFragment, 64
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	b[8], b[9], b[23] = 0x20, 0x01, 1
	b[24], b[25], b[39] = 0x20, 0x01, 0x10
	b[40] = packet.ProtoUDP
	fo := uint16(off)
	if mf {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[42:], fo)
	binary.BigEndian.PutUint32(b[44:], id)
	for i := range n {
		b[48+i] = byte((off + i) % 251)
	}
	var p packet.Packet
	packet.Decode(packet.LinkRaw, b, &p)
	return &p
}

const sec = int64(time.Second)

func TestDefragInOrderAndBlocks(t *testing.T) {
	d := newDefrag()
	if s := d.add(frag4(t, 1, 0, 1480, true), false, 0); s != fragHeld {
		t.Fatalf("first fragment: %v", s)
	}
	if s := d.add(frag4(t, 1, 1480, 100, false), false, 1); s != fragDone {
		t.Fatalf("last fragment: %v", s)
	}
	p := &d.pkt
	if p.L3Len != 20+1580 || p.Fragmented || p.FragOffset != 0 || len(p.Network) != 1600 {
		t.Fatalf("reassembled: length %d, fragmented %v", p.L3Len, p.Fragmented)
	}
	if ipChecksum(p.Network[:20]) != 0 {
		t.Error("bad header checksum")
	}
	if len(d.blocks) != 2 || len(d.blocks[0]) != 1500 || len(d.blocks[1]) != 100 || d.blocks[1][0] != byte(1480%251) {
		t.Errorf("blocks: %d", len(d.blocks))
	}
	if len(d.queues) != 0 || d.mem[0] != 0 {
		t.Errorf("queue left behind: %d queues, %d bytes", len(d.queues), d.mem[0])
	}
}

func TestDefragDuplicateAndOverlap(t *testing.T) {
	d := newDefrag()
	d.add(frag4(t, 2, 0, 800, true), false, 0)
	// Inside the run [0, 800): a duplicate, the queue stays.
	if s := d.add(frag4(t, 2, 400, 200, true), false, 0); s != fragDiscarded || len(d.queues) != 1 {
		t.Fatalf("duplicate: %v, %d queues", s, len(d.queues))
	}
	// Reaching past the run's end from inside it: an overlap, the queue dies.
	if s := d.add(frag4(t, 2, 792, 200, false), false, 0); s != fragDiscarded || len(d.queues) != 0 {
		t.Fatalf("overlap: %v, %d queues", s, len(d.queues))
	}
	// A new queue: the second fragment first, then the first: complete.
	d.add(frag4(t, 2, 800, 200, false), false, 0)
	if s := d.add(frag4(t, 2, 0, 800, true), false, 0); s != fragDone || d.pkt.L3Len != 1020 {
		t.Fatalf("out of order: %v, %d bytes", s, d.pkt.L3Len)
	}
	// A last fragment that disagrees with the length known: IPv4 drops the queue.
	d.add(frag4(t, 3, 800, 200, false), false, 0)
	if s := d.add(frag4(t, 3, 800, 100, false), false, 0); s != fragDiscarded || len(d.queues) != 0 {
		t.Fatalf("second last fragment: %v, %d queues", s, len(d.queues))
	}
}

func TestDefragExpiry(t *testing.T) {
	d := newDefrag()
	d.add(frag4(t, 4, 0, 800, true), false, 0)
	d.add(frag6(t, 4, 0, 800, true), false, 0)
	// 30 s for IPv4, 60 s for IPv6, from the first fragment.
	if s := d.add(frag4(t, 4, 800, 8, false), false, 30*sec); s != fragHeld {
		t.Errorf("IPv4 at 30 s: %v, want a new queue (held)", s)
	}
	if s := d.add(frag6(t, 4, 800, 8, false), false, 59*sec); s != fragDone {
		t.Errorf("IPv6 at 59 s: %v, want reassembled", s)
	}
	d.add(frag6(t, 5, 0, 800, true), false, 60*sec)
	if s := d.add(frag6(t, 5, 800, 8, false), false, 120*sec); s != fragHeld {
		t.Errorf("IPv6 at 60 s: %v, want a new queue (held)", s)
	}
	d.expire(1000 * sec)
	if len(d.queues) != 0 || d.mem != [2]int{} {
		t.Errorf("after expiry: %d queues, memory %v", len(d.queues), d.mem)
	}
}

func TestDefragMemoryThreshold(t *testing.T) {
	d := newDefrag()
	id := uint16(0)
	for d.mem[0] <= fragHighThresh {
		id++
		if s := d.add(frag4(t, id, 0, 1480, true), false, 0); s != fragHeld {
			t.Fatalf("queue %d: %v", id, s)
		}
	}
	// Over the threshold: a new queue is refused.
	if s := d.add(frag4(t, id+1, 0, 1480, true), false, 0); s != fragDiscarded {
		t.Fatalf("over the threshold: %v", s)
	}
	// Until the queues expire.
	if s := d.add(frag4(t, id+1, 0, 1480, true), false, 30*sec); s != fragHeld {
		t.Fatalf("after expiry: %v", s)
	}
	if n := len(d.queues); n != 1 {
		t.Errorf("%d queues after expiry, want 1", n)
	}
}

func TestDefragIPv6(t *testing.T) {
	d := newDefrag()
	// A non-last fragment not a multiple of 8 kills the queue and passes
	// unreassembled.
	d.add(frag6(t, 6, 800, 200, false), false, 0)
	if s := d.add(frag6(t, 6, 0, 801, true), false, 0); s != fragPass || len(d.queues) != 0 {
		t.Fatalf("unaligned: %v, %d queues", s, len(d.queues))
	}
	// An atomic fragment: reassembled at once, without the fragment header.
	if s := d.add(frag6(t, 7, 0, 100, false), false, 0); s != fragDone {
		t.Fatalf("atomic fragment: %v", s)
	}
	if d.pkt.L3Len != 140 || d.pkt.Network[6] != packet.ProtoUDP || d.pkt.Layers.Has(packet.LayerIPv6Ext) {
		t.Errorf("atomic fragment reassembled: %d bytes, next header %d", d.pkt.L3Len, d.pkt.Network[6])
	}
	// A last fragment that disagrees: dropped, the IPv6 queue stays.
	d.add(frag6(t, 8, 800, 200, false), false, 0)
	if s := d.add(frag6(t, 8, 800, 100, false), false, 0); s != fragDiscarded || len(d.queues) != 1 {
		t.Fatalf("second last fragment: %v, %d queues", s, len(d.queues))
	}
	// Directions are separate queues.
	if s := d.add(frag6(t, 8, 0, 800, true), true, 0); s != fragHeld {
		t.Fatalf("outgoing first fragment: %v", s)
	}
	if s := d.add(frag6(t, 8, 0, 800, true), false, 0); s != fragDone || d.pkt.L3Len != 1040 {
		t.Fatalf("incoming first fragment: %v, %d bytes", s, d.pkt.L3Len)
	}
}

// TestDefragAllocs: steady-state reassembly allocates nothing.
func TestDefragAllocs(t *testing.T) {
	d := newDefrag()
	a, b := frag4(t, 9, 0, 1480, true), frag4(t, 9, 1480, 500, false)
	c, e := frag6(t, 9, 0, 1448, true), frag6(t, 9, 1448, 500, false)
	now := int64(0)
	step := func() {
		now += int64(time.Millisecond)
		d.add(a, false, now)
		d.add(b, false, now)
		d.add(c, false, now)
		d.add(e, false, now)
	}
	// Past ipfrag_time the expiry list stops growing.
	for range 70000 {
		step()
	}
	if n := testing.AllocsPerRun(5000, step); n != 0 {
		t.Errorf("%.2f allocations per datagram pair", n)
	}
}
