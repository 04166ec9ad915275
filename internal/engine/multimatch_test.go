package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
)

// each is the reference: every matcher on its own.
func each(ms []*strMatcher, l3 []byte) uint64 {
	var m uint64
	for i, s := range ms {
		if s.match(l3) {
			m |= 1 << i
		}
	}
	return m
}

// FuzzMultiMatch: the search of all the matchers together gives, bit for
// bit, what each matcher gives on its own — windows, --icase, ts_bm's blind
// spots, empty patterns, several matchers on one anchor byte.
func FuzzMultiMatch(f *testing.F) {
	f.Add([]byte("\x45\x00\x00\x00OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n"), "friendly-scanner|sipvicious|y|OPTIONS sip:", uint8(0b0010), uint8(4), uint8(30))
	f.Add([]byte("REGISTER sip:PBX.Example-Secret.NET SIP/2.0\r\n"), "pbx.example-secret.net|REGISTER sip:|Secret|SIP/2.0", uint8(0b0001), uint8(0), uint8(13))
	f.Add([]byte("xxSiPViCiOuSxx\xff\xdf\xbf"), "sipvicious|\xff|\xdf|\xbf\xdf", uint8(0b1111), uint8(2), uint8(200))
	f.Add([]byte("aabaabaab"), "abaab|baab|aab|b", uint8(0), uint8(1), uint8(8))
	f.Fuzz(func(t *testing.T, text []byte, pats string, icase, from, to uint8) {
		if len(text) > 2048 || len(pats) > 200 {
			return
		}
		var ms []*strMatcher
		start := 0
		for i := 0; i <= len(pats) && len(ms) < 8; i++ {
			if i < len(pats) && pats[i] != '|' {
				continue
			}
			k := len(ms)
			// Windows: every other matcher takes the fuzzed one.
			lo, hi := uint16(0), uint16(65535)
			if k%2 == 1 {
				lo, hi = uint16(from), uint16(to)
			}
			ms = append(ms, newStrMatcher(pats[start:i], icase&(1<<k) != 0, lo, hi, algoBM))
			start = i + 1
		}
		mm := newMultiMatcher(ms)
		if got, want := mm.matches(text), each(ms, text); got != want {
			t.Fatalf("together %b, one by one %b (patterns %q, icase %b, window [%d,%d), text %q)", got, want, pats, icase, from, to, text)
		}
	})
}

// labStrings returns the distinct string matchers of the lab policy's
// iptables program and the IP packets of the corpus's SIP captures.
func labStrings(t testing.TB) ([]*strMatcher, [][]byte) {
	t.Helper()
	p, err := policy.LoadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: backend.IPTables})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(rs, backend.IPTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.ustrs) < 10 || prog.multi == nil {
		t.Fatalf("the lab program has %d string matchers", len(prog.ustrs))
	}
	var pkts [][]byte
	names, _ := filepath.Glob("../../../shared/corpus/pcap/*.pcap")
	if len(names) == 0 {
		t.Skip("corpus captures not available")
	}
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := capture.NewReader(n, f)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := rd.Next()
			if err != nil {
				break
			}
			var pk packet.Packet
			if packet.Decode(rec.LinkType, append([]byte(nil), rec.Data...), &pk) == nil && len(pk.Network) > 0 {
				pkts = append(pkts, pk.Network)
			}
		}
		f.Close()
	}
	return prog.ustrs, pkts
}

// TestMultiMatchCorpus: on every packet of the corpus, the lab program's
// string matches together are the matches one by one, and some of them
// are found.
func TestMultiMatchCorpus(t *testing.T) {
	ms, pkts := labStrings(t)
	mm := newMultiMatcher(ms)
	var seen uint64
	for i, p := range pkts {
		got, want := mm.matches(p), each(ms, p)
		if got != want {
			t.Fatalf("packet %d: together %b, one by one %b", i, got, want)
		}
		seen |= got
	}
	if n := popcount(seen); n < 5 {
		t.Errorf("only %d of %d matchers ever matched: the corpus does not exercise the search", n, len(ms))
	}
	if a := testing.AllocsPerRun(100, func() { mm.matches(pkts[len(pkts)/2]) }); a != 0 {
		t.Errorf("%v allocations per packet", a)
	}
}

func popcount(x uint64) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// BenchmarkStringMatches: the lab program's string matches on the SIP
// packets of the corpus (responses included), one matcher at a time
// against the search of all together. The two alternate every 1,000
// packets (and which goes first), so that other load on the machine
// falls on both alike; the metrics are each one's nanoseconds per packet and their ratio.
func BenchmarkStringMatches(b *testing.B) {
	ms, all := labStrings(b)
	var pkts [][]byte
	for _, p := range all {
		if len(p) > 200 { // SIP, not TCP handshakes
			pkts = append(pkts, p)
		}
	}
	mm := newMultiMatcher(ms)
	var tEach, tTogether time.Duration
	var sink uint64
	n := 0
	b.ReportAllocs()
	run := func(f func([]byte) uint64) time.Duration {
		t := time.Now()
		for i := range 1000 {
			sink += f(pkts[(n+i)%len(pkts)])
		}
		return time.Since(t)
	}
	together := mm.matches
	one := func(p []byte) uint64 { return each(ms, p) }
	odd := false
	for b.Loop() {
		// Which goes first (and finds the packets in the cache) alternates.
		if odd {
			tEach += run(one)
			tTogether += run(together)
		} else {
			tTogether += run(together)
			tEach += run(one)
		}
		odd = !odd
		n += 1000
	}
	b.ReportMetric(float64(tEach.Nanoseconds())/float64(n), "ns/packet-each")
	b.ReportMetric(float64(tTogether.Nanoseconds())/float64(n), "ns/packet-together")
	b.ReportMetric(float64(tEach)/float64(tTogether), "speedup")
	_ = sink
}
