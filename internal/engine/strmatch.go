package engine

import "bytes"

// String matching as xt_string does it: the kernel's textsearch over the
// bytes of the packet between --from and --to (counted from the network
// header), with Boyer-Moore ("bm") or Knuth-Morris-Pratt ("kmp"), optionally
// ignoring case with the kernel's toupper (which folds ISO 8859-1 letters
// too).
//
// The kernel hands the search the packet block by block (the linear part,
// page fragments, the fragments of a reassembled datagram). Boyer-Moore
// searches each block on its own and cannot see a pattern split across two
// blocks; KMP carries its state over. The engine gives the search one block
// per IP fragment of a reassembled datagram (a single block otherwise), so
// a string split across IP fragments is invisible to bm, as in the kernel.
// A string split across TCP segments is invisible to both: each segment is
// its own packet.

type algo uint8

const (
	algoBM algo = iota
	algoKMP
)

// kernelUpper is the kernel's toupper (lib/ctype.c): ASCII and ISO 8859-1
// lower-case letters, including 0xdf and 0xff, move down by 32.
var kernelUpper [256]byte

func init() {
	for i := range kernelUpper {
		c := byte(i)
		lower := (c >= 'a' && c <= 'z') || (c >= 0xdf && c <= 0xf6) || c >= 0xf8
		if lower {
			c -= 32
		}
		kernelUpper[i] = c
	}
}

// strMatcher is one compiled string match.
type strMatcher struct {
	pattern []byte // upper-cased by kernelUpper when icase
	icase   bool
	from    int
	to      int
	algo    algo
	// exactBM: the pattern has a byte whose kernel case folding does not
	// round-trip (0xdf, 0xbf under --icase), where ts_bm's bad-character
	// table misses matches; the search then runs the port of ts_bm itself.
	exactBM bool
	// anchor: the pattern index searched for first with IndexByte, and
	// the (at most two) text bytes that match it.
	anchor int
	a1, a2 int
	// Boyer-Moore tables, as lib/ts_bm.c computes them.
	badShift  [256]int
	goodShift []int
	// KMP prefix table, as lib/ts_kmp.c computes it.
	prefix []int
}

// sipFreq ranks bytes by how often they appear in SIP text: a rough
// frequency from a typical request, used to anchor the search on a rare
// byte of the pattern.
var sipFreq [256]int

func init() {
	sample := "REGISTER sip:pbx.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK-1-0\r\n" +
		"From: <sip:1001@pbx.example.net>;tag=1\r\nTo: <sip:1001@pbx.example.net>\r\nCall-ID: 1-2@198.51.100.23\r\n" +
		"CSeq: 1 REGISTER\r\nContact: <sip:1001@198.51.100.23:5060>\r\nMax-Forwards: 70\r\nUser-Agent: Zoiper rv2.10.20.4\r\n" +
		"Expires: 3600\r\nAuthorization: Digest username=\"1001\",realm=\"pbx\",nonce=\"abc\",uri=\"sip:pbx\",response=\"0123456789abcdef\"\r\nContent-Length: 0\r\n\r\n"
	for i := 0; i < len(sample); i++ {
		sipFreq[sample[i]]++
	}
}

func newStrMatcher(pattern string, icase bool, from, to uint16, a algo) *strMatcher {
	s := &strMatcher{pattern: []byte(pattern), icase: icase, from: int(from), to: int(to), algo: a}
	if icase {
		for i, c := range s.pattern {
			s.pattern[i] = kernelUpper[c]
			if s.pattern[i] == 0xdf || s.pattern[i] == 0xbf {
				s.exactBM = a == algoBM
			}
		}
	}
	s.computeBM()
	s.computeKMP()
	best, bestF := 0, 1<<30
	for i, c := range s.pattern {
		n := 0
		a1, a2 := -1, -1
		for t := 0; t < 256; t++ {
			if s.fold(byte(t)) == c {
				n += sipFreq[t] + 1
				if a1 < 0 {
					a1 = t
				} else {
					a2 = t
				}
			}
		}
		if a1 < 0 {
			continue // no byte can match this one: never found
		}
		if n < bestF {
			best, bestF = i, n
			s.a1, s.a2 = a1, a2
		}
	}
	if bestF == 1<<30 {
		s.a1, s.a2 = -1, -1
	}
	s.anchor = best
	return s
}

func (s *strMatcher) fold(c byte) byte {
	if s.icase {
		return kernelUpper[c]
	}
	return c
}

// computeBM fills the tables of lib/ts_bm.c (compute_prefix_tbl).
func (s *strMatcher) computeBM() {
	m := len(s.pattern)
	for i := range s.badShift {
		s.badShift[i] = m
	}
	for i := 0; i < m-1; i++ {
		s.badShift[s.pattern[i]] = m - 1 - i
		if s.icase {
			s.badShift[kernelLower(s.pattern[i])] = m - 1 - i
		}
	}
	s.goodShift = make([]int, m+1)
	if m == 0 {
		return
	}
	s.goodShift[0] = 1
	for i := 1; i < m; i++ {
		s.goodShift[i] = m
	}
	for i, g := m-1, 1; i > 0; i, g = i-1, g+1 {
		for j := i - 1; j >= 1-g; j-- {
			if subpattern(s.pattern, i, j, g) {
				s.goodShift[g] = m - j - g
				break
			}
		}
	}
}

// kernelLower is the kernel's tolower.
func kernelLower(c byte) byte {
	upper := (c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xde)
	if upper {
		return c + 32
	}
	return c
}

func subpattern(p []byte, i, j, g int) bool {
	x, y := i+g-1, j+g-1
	for {
		if x < 0 || y < 0 || p[x] != p[y] {
			return false
		}
		x--
		y--
		if y < 0 {
			return true
		}
		g--
		if g == 0 {
			return p[i-1] != p[j-1]
		}
	}
}

// computeKMP fills the prefix table of lib/ts_kmp.c.
func (s *strMatcher) computeKMP() {
	m := len(s.pattern)
	s.prefix = make([]int, m)
	k := 0
	for q := 1; q < m; q++ {
		for k > 0 && s.pattern[k] != s.pattern[q] {
			k = s.prefix[k-1]
		}
		if s.pattern[k] == s.pattern[q] {
			k++
		}
		s.prefix[q] = k
	}
}

// window returns the bytes of l3 the match looks at.
func (s *strMatcher) window(l3 []byte) []byte {
	to := s.to
	if to > len(l3) {
		to = len(l3)
	}
	if s.from >= to {
		return nil
	}
	return l3[s.from:to]
}

// match reports whether the pattern is in the window of l3 (one block).
func (s *strMatcher) match(l3 []byte) bool {
	return s.find(s.window(l3))
}

// matchBlocks searches a datagram given as blocks (the fragments of a
// reassembled datagram; offsets count over their concatenation).
func (s *strMatcher) matchBlocks(blocks [][]byte) bool {
	if len(blocks) == 1 {
		return s.match(blocks[0])
	}
	off := 0
	q := 0 // KMP state across blocks
	for _, b := range blocks {
		lo, hi := s.from-off, s.to-off
		off += len(b)
		if hi <= 0 {
			break
		}
		if lo >= len(b) {
			continue
		}
		if lo < 0 {
			lo = 0
		}
		if hi > len(b) {
			hi = len(b)
		}
		if s.algo == algoBM {
			if s.find(b[lo:hi]) {
				return true
			}
			continue
		}
		for _, c := range b[lo:hi] {
			c = s.fold(c)
			for q > 0 && s.pattern[q] != c {
				q = s.prefix[q-1]
			}
			if s.pattern[q] == c {
				q++
			}
			if q == len(s.pattern) {
				return true
			}
		}
	}
	return false
}

// find reports whether the pattern occurs in h. It anchors on the pattern's
// rarest byte with IndexByte and verifies around each candidate; the result
// is the kernel's (FuzzStringMatch checks it against the ported ts_bm).
func (s *strMatcher) find(h []byte) bool {
	m := len(s.pattern)
	if m == 0 {
		return true
	}
	if len(h) < m || s.a1 < 0 {
		return false
	}
	if s.exactBM {
		return s.findBM(h)
	}
	k := s.anchor
	// Candidate anchor positions run from k to len(h)-m+k.
	last := len(h) - m + k
	n1, n2 := -2, -2 // next occurrence of a1 / a2 at or after pos (-1: none)
	for pos := k; pos <= last; {
		if n1 != -1 && n1 < pos {
			n1 = indexFrom(h[:last+1], byte(s.a1), pos)
		}
		if s.a2 >= 0 && n2 != -1 && n2 < pos {
			n2 = indexFrom(h[:last+1], byte(s.a2), pos)
		}
		c := n1
		if s.a2 >= 0 && n2 >= 0 && (c < 0 || n2 < c) {
			c = n2
		}
		if c < 0 {
			return false
		}
		if s.equalAt(h[c-k:]) {
			return true
		}
		pos = c + 1
	}
	return false
}

func indexFrom(h []byte, c byte, from int) int {
	if from >= len(h) {
		return -1
	}
	i := bytes.IndexByte(h[from:], c)
	if i < 0 {
		return -1
	}
	return from + i
}

func (s *strMatcher) equalAt(h []byte) bool {
	if !s.icase {
		return string(h[:len(s.pattern)]) == string(s.pattern)
	}
	for i, p := range s.pattern {
		if kernelUpper[h[i]] != p {
			return false
		}
	}
	return true
}

// findBM is lib/ts_bm.c's bm_find on one block: the reference FuzzStringMatch
// compares find with.
func (s *strMatcher) findBM(text []byte) bool {
	m := len(s.pattern)
	if m == 0 {
		return true
	}
	shift := m - 1
	for shift < len(text) {
		i := 0
		for ; i < m; i++ {
			if s.fold(text[shift-i]) != s.pattern[m-1-i] {
				break
			}
		}
		if i == m {
			return true
		}
		bs := s.badShift[text[shift-i]]
		shift = max(shift-i+bs, shift+s.goodShift[i])
	}
	return false
}
