package engine

import (
	"bytes"
	"testing"
)

// FuzzStringMatch checks the fast search against the port of the kernel's
// Boyer-Moore (lib/ts_bm.c) on one block, with and without --icase, and
// the block-wise search: bm misses a pattern split across blocks, kmp
// finds it.
func FuzzStringMatch(f *testing.F) {
	f.Add([]byte("OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n"), "friendly-scanner", false, 3)
	f.Add([]byte("REGISTER sip:PBX.Example-Secret.NET SIP/2.0\r\n"), "pbx.example-secret.net", true, 20)
	f.Add([]byte("xxSiPViCiOuSxx\xff\xdf"), "sipvicious", true, 5)
	f.Add([]byte("aabaabaab"), "abaab", false, 4)
	f.Add([]byte("\xe9\xc9\xff\xdf"), "\xe9\xff", true, 1)
	// The RFC 4475 torture messages (valid and invalid) are seeds in
	// testdata/fuzz/FuzzStringMatch/rfc4475-*, each with "sip:" (--icase)
	// and "SIP/2.0", split in the middle.
	f.Fuzz(func(t *testing.T, text []byte, pattern string, icase bool, split int) {
		if len(pattern) == 0 || len(pattern) > 64 || len(text) > 4096 {
			return
		}
		s := newStrMatcher(pattern, icase, 0, 65535, algoBM)
		want := s.findBM(text)
		if got := s.find(text); got != want {
			t.Fatalf("find(%q, %q, icase=%v) = %v, ts_bm says %v", text, pattern, icase, got, want)
		}
		// A naive reference for the whole block.
		folded := make([]byte, len(text))
		for i, c := range text {
			folded[i] = s.fold(c)
		}
		naive := bytes.Contains(folded, s.pattern)
		if naive != want && !s.exactBM {
			t.Fatalf("ts_bm port says %v, naive search %v for %q in %q", want, naive, pattern, text)
		}
		if split < 0 || split > len(text) {
			return
		}
		blocks := [][]byte{text[:split], text[split:]}
		bm := s.matchBlocks(blocks)
		if bm != (s.findBM(text[:split]) || s.findBM(text[split:])) {
			t.Fatalf("bm over blocks = %v", bm)
		}
		k := newStrMatcher(pattern, icase, 0, 65535, algoKMP)
		if kmp := k.matchBlocks(blocks); kmp != naive {
			t.Fatalf("kmp over blocks = %v, whole text %v", kmp, naive)
		}
	})
}

// TestStringWindow: offsets count from the network header and the match
// must end before --to.
func TestStringWindow(t *testing.T) {
	l3 := append(make([]byte, 28), []byte("REGISTER sip:pbx SIP/2.0\r\n")...)
	if !newStrMatcher("REGISTER sip:", false, 28, 41, algoBM).match(l3) {
		t.Error("request line at the start of the UDP payload not found")
	}
	if newStrMatcher("REGISTER sip:", false, 28, 40, algoBM).match(l3) {
		t.Error("a match ending past --to was found")
	}
	if newStrMatcher("REGISTER sip:", false, 29, 65535, algoBM).match(l3) {
		t.Error("a match starting before --from was found")
	}
}
