package engine

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// flowTable is an open-addressing hash table (linear probing, backward-shift
// deletion) from flow keys to int64 values: conntrack's index and its
// record of dropped flows. It hashes the fixed-size key directly, with a
// per-table random seed, and grows at three quarters load; it never shrinks, so its
// size follows the peak number of live flows.
type flowTable struct {
	ents []flowEnt
	mask uint64
	n    int
	seed uint64
}

type flowEnt struct {
	key  flowKey
	used bool
	val  int64
}

func newFlowTable(size int) *flowTable {
	n := 16
	for 3*n < 4*size {
		n <<= 1
	}
	return &flowTable{ents: make([]flowEnt, n), mask: uint64(n - 1), seed: rand.Uint64() | 1}
}

func (t *flowTable) hash(k *flowKey) uint64 {
	const m1, m2 = 0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f
	s0, s1 := binary.LittleEndian.Uint64(k.src[:8]), binary.LittleEndian.Uint64(k.src[8:])
	d0, d1 := binary.LittleEndian.Uint64(k.dst[:8]), binary.LittleEndian.Uint64(k.dst[8:])
	p := uint64(k.sp)<<24 | uint64(k.dp)<<8 | uint64(k.proto)
	h1, l1 := bits.Mul64(s1^t.seed, d1^m1)
	h2, l2 := bits.Mul64(s0^d0^m2, p^t.seed^m1)
	x := h1 ^ l1 ^ h2 ^ l2
	x ^= x >> 32
	return x * m2
}

// equal compares the fields that differ most often first.
func (k *flowKey) equal(o *flowKey) bool {
	return k.sp == o.sp && k.dp == o.dp && k.src == o.src && k.dst == o.dst && k.proto == o.proto
}

// find returns the index of k's entry, or -1.
func (t *flowTable) find(k *flowKey) int {
	i := t.hash(k) & t.mask
	for {
		e := &t.ents[i]
		if !e.used {
			return -1
		}
		if e.key.equal(k) {
			return int(i)
		}
		i = (i + 1) & t.mask
	}
}

func (t *flowTable) get(k flowKey) (int64, bool) {
	if i := t.find(&k); i >= 0 {
		return t.ents[i].val, true
	}
	return 0, false
}

// put sets k's value.
func (t *flowTable) put(k flowKey, v int64) {
	if 4*(t.n+1) > 3*len(t.ents) {
		t.grow()
	}
	i := t.hash(&k) & t.mask
	for {
		e := &t.ents[i]
		if !e.used {
			*e = flowEnt{key: k, used: true, val: v}
			t.n++
			return
		}
		if e.key.equal(&k) {
			e.val = v
			return
		}
		i = (i + 1) & t.mask
	}
}

func (t *flowTable) grow() {
	old := t.ents
	t.ents = make([]flowEnt, 2*len(old))
	t.mask = uint64(len(t.ents) - 1)
	for i := range old {
		e := &old[i]
		if !e.used {
			continue
		}
		j := t.hash(&e.key) & t.mask
		for t.ents[j].used {
			j = (j + 1) & t.mask
		}
		t.ents[j] = *e
	}
}

func (t *flowTable) del(k flowKey) {
	if i := t.find(&k); i >= 0 {
		t.deleteAt(uint64(i))
	}
}

// deleteAt empties slot i and moves later entries of its probe run back,
// so that no lookup needs tombstones.
func (t *flowTable) deleteAt(i uint64) {
	j := i
	for {
		j = (j + 1) & t.mask
		e := &t.ents[j]
		if !e.used {
			break
		}
		h := t.hash(&e.key) & t.mask
		// Move e to i unless its home slot lies cyclically in (i, j].
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		t.ents[i] = *e
		i = j
	}
	t.ents[i] = flowEnt{}
	t.n--
}

// deleteIf removes every entry for which drop returns true.
func (t *flowTable) deleteIf(drop func(v int64) bool) {
	for i := uint64(0); i < uint64(len(t.ents)); {
		e := &t.ents[i]
		if e.used && drop(e.val) {
			// An entry may move into slot i: look at it again.
			t.deleteAt(i)
			continue
		}
		i++
	}
}
