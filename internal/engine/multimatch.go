package engine

import (
	"bytes"
	"math/bits"
	"slices"
)

// multiMatcher evaluates every string match of a program together, with a
// vectorised search: each matcher is anchored on one byte of its pattern
// (a byte rare in SIP text, and shared with other matchers where that
// costs less than one more scan), and each distinct anchor is looked for
// once, over the union of its matchers' windows, by bytes.IndexByte (SIMD).
// Every anchor position is held against each matcher of the anchor: window,
// case folding and the bytes around it, with the matcher's own comparison.
// A --icase pattern's anchor is the pair of bytes that fold to it (both are
// scanned).
//
// The result is bit for bit what the matchers give one by one
// (strMatcher.match, the kernel's ts_bm semantics), by construction: an
// occurrence of a pattern inside a matcher's window has the anchor byte at
// its anchor offset, so it is seen; a position is accepted only when the
// matcher's window holds the whole pattern there and the bytes compare as
// the matcher compares them. The matchers ts_bm has blind spots for
// (exactBM: --icase patterns with 0xdf or 0xbf) run the ts_bm port on their
// own, as before. FuzzMultiMatch checks the equivalence.
//
// A scan stops as soon as all of its matchers are found.
type multiMatcher struct {
	ms      []*strMatcher
	anchors []anchorScan
	slow    uint64 // exactBM matchers, run on their own
	empty   uint64 // empty patterns: always found, as ts_bm finds them
}

// anchorScan is one distinct anchor: the bytes scanned for, where, and the
// matchers it serves.
type anchorScan struct {
	b1, b2  int // the bytes (b2 -1 when one)
	lo, hi  int // union of the matchers' windows
	members []anchorMember
	mask    uint64 // the members' bits
}

type anchorMember struct {
	k   int // matcher index (bit)
	off int // the anchor's offset in the pattern
}

// scanCost is what one more IndexByte scan costs, in expected candidate
// verifications per packet (sipFreq counts a byte's occurrences in about
// 500 bytes of SIP, the size of a request): a scan costs about as much as
// six verifications.
const scanCost = 6

// newMultiMatcher builds the search for ms (at most 64 matchers), or
// returns nil.
func newMultiMatcher(ms []*strMatcher) *multiMatcher {
	if len(ms) == 0 || len(ms) > 64 {
		return nil
	}
	mm := &multiMatcher{ms: ms}
	type choice struct {
		b1, b2 int
		off    int
		freq   int // expected candidates per packet (sipFreq, plus one per byte)
	}
	// The options of each matcher: every offset, with the bytes folding to
	// the pattern byte there.
	opts := make([][]choice, len(ms))
	for k, s := range ms {
		switch {
		case len(s.pattern) == 0:
			mm.empty |= 1 << k
			continue
		case s.exactBM:
			mm.slow |= 1 << k
			continue
		case s.a1 < 0:
			continue // no byte can match: never found
		}
		for off, c := range s.pattern {
			ch := choice{b1: -1, b2: -1, off: off}
			for t := 0; t < 256; t++ {
				if s.fold(byte(t)) == c {
					if ch.b1 < 0 {
						ch.b1 = t
					} else {
						ch.b2 = t
					}
					ch.freq += sipFreq[t] + 1
				}
			}
			opts[k] = append(opts[k], ch)
		}
	}
	// Seed the anchors with each matcher's rarest byte; then each matcher
	// takes the anchor that costs least: its expected candidates, plus a
	// scan when the anchor is not a seed.
	type key struct{ b1, b2 int }
	seeds := map[key]bool{}
	for k := range ms {
		if len(opts[k]) > 0 {
			ch := slices.MinFunc(opts[k], func(x, y choice) int { return x.freq - y.freq })
			seeds[key{ch.b1, ch.b2}] = true
		}
	}
	index := map[key]int{}
	for k, s := range ms {
		if len(opts[k]) == 0 {
			continue
		}
		best, bestCost := 0, 1<<30
		for i, ch := range opts[k] {
			cost := ch.freq
			if !seeds[key{ch.b1, ch.b2}] {
				cost += scanCost
			}
			if cost < bestCost {
				best, bestCost = i, cost
			}
		}
		ch := opts[k][best]
		i, ok := index[key{ch.b1, ch.b2}]
		if !ok {
			mm.anchors = append(mm.anchors, anchorScan{b1: ch.b1, b2: ch.b2, lo: s.from, hi: s.to})
			i = len(mm.anchors) - 1
			index[key{ch.b1, ch.b2}] = i
		}
		a := &mm.anchors[i]
		a.lo, a.hi = min(a.lo, s.from), max(a.hi, s.to)
		a.members = append(a.members, anchorMember{k: k, off: ch.off})
		a.mask |= 1 << k
	}
	return mm
}

// matches returns the matchers (bit i for ms[i]) that find their pattern
// in l3, a packet that is not reassembled, as strMatcher.match would.
func (mm *multiMatcher) matches(l3 []byte) uint64 {
	found := mm.empty
	for slow := mm.slow; slow != 0; slow &= slow - 1 {
		k := bits.TrailingZeros64(slow)
		if mm.ms[k].match(l3) {
			found |= 1 << k
		}
	}
	for i := range mm.anchors {
		a := &mm.anchors[i]
		end := min(a.hi, len(l3))
		if a.lo >= end {
			continue
		}
		found = mm.scan(a, l3, end, a.b1, found)
		if a.b2 >= 0 && found&a.mask != a.mask {
			found = mm.scan(a, l3, end, a.b2, found)
		}
	}
	return found
}

// scan looks for byte b in l3[a.lo:end] and checks a's matchers at each
// place.
func (mm *multiMatcher) scan(a *anchorScan, l3 []byte, end, b int, found uint64) uint64 {
	for p := a.lo; p < end; p++ {
		i := bytes.IndexByte(l3[p:end], byte(b))
		if i < 0 {
			break
		}
		p += i
		for _, m := range a.members {
			if found&(1<<m.k) != 0 {
				continue
			}
			s := mm.ms[m.k]
			st := p - m.off
			if st < s.from || st+len(s.pattern) > min(s.to, len(l3)) {
				continue
			}
			if s.equalAt(l3[st:]) {
				found |= 1 << m.k
			}
		}
		if found&a.mask == a.mask {
			break
		}
	}
	return found
}
