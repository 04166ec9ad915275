package replay_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/replay"
)

// sipPackets decodes the phone's and the scanners' packets to the server
// from the SIP captures of the corpus.
func sipPackets(t testing.TB) ([]packet.Packet, []time.Time) {
	t.Helper()
	var pkts []packet.Packet
	var times []time.Time
	for _, n := range []string{"register-flood.pcap", "svcrack.pcap", "svwar.pcap", "legit-udp.pcap"} {
		f, err := os.Open(corpusFile(t, n))
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
			var p packet.Packet
			data := append([]byte(nil), rec.Data...)
			if packet.Decode(rec.LinkType, data, &p) != nil || p.IPVersion == 0 || p.Dst != labLocal[0] {
				continue
			}
			pkts = append(pkts, p)
			times = append(times, rec.Timestamp)
		}
		f.Close()
	}
	return pkts, times
}

// BenchmarkEngineLabSIP evaluates the lab ruleset (iptables) on SIP
// packets to the server: raw chains with ten scanner signatures, the knock
// and the method limits, conntrack, the filter chains. Time advances by
// 1 ms per packet, so rate limits and timeouts run as they would.
func BenchmarkEngineLabSIP(b *testing.B) {
	for _, be := range backends {
		b.Run(string(be), func(b *testing.B) {
			_, prog := labProgram(b, be)
			pkts, _ := sipPackets(b)
			eng := engine.New(prog, engine.Options{Outgoing: true})
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			in := engine.Input{Dir: engine.In}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in.Pkt = &pkts[i%len(pkts)]
				in.Time = base.Add(time.Duration(i) * time.Millisecond)
				eng.Process(&in)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}

// TestEngineAllocs: evaluating a packet allocates nothing once the tables
// hold the sources.
func TestEngineAllocs(t *testing.T) {
	_, prog := labProgram(t, backend.IPTables)
	pkts, _ := sipPackets(t)
	eng := engine.New(prog, engine.Options{Outgoing: true})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := engine.Input{Dir: engine.In}
	i := 0
	step := func() {
		in.Pkt = &pkts[i%len(pkts)]
		in.Time = base.Add(time.Duration(i) * time.Millisecond)
		eng.Process(&in)
		i++
	}
	for range 2 * len(pkts) {
		step()
	}
	if a := testing.AllocsPerRun(5000, step); a != 0 {
		t.Errorf("%.2f allocations per packet, want 0", a)
	}
}

// BenchmarkReplayCapture replays the capture named by
// SIPWALL_BENCH_CAPTURE (made by ./internal/replay/cmd/mkcapture) through
// replay.Run, reading from memory: the whole path of sipwall replay but
// the file system.
func BenchmarkReplayCapture(b *testing.B) {
	path := os.Getenv("SIPWALL_BENCH_CAPTURE")
	if path == "" {
		b.Skip("SIPWALL_BENCH_CAPTURE not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, be := range backends {
		b.Run(string(be), func(b *testing.B) {
			p, prog := labProgram(b, be)
			opt := labOptions(p, be)
			frames := 0
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				rep, err := replay.Run(prog, []replay.Input{{Name: "bench", R: bytes.NewReader(data)}}, opt)
				if err != nil {
					b.Fatal(err)
				}
				frames += rep.Frames
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestEngineAllocsFragments: reassembling and evaluating the fragmented
// capture's datagrams allocates nothing in steady state.
func TestEngineAllocsFragments(t *testing.T) {
	_, prog := labProgram(t, backend.IPTables)
	f, err := os.Open(fragCapture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := capture.NewReader("fragments.pcap", f)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []packet.Packet
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		var p packet.Packet
		packet.Decode(rec.LinkType, append([]byte(nil), rec.Data...), &p)
		pkts = append(pkts, p)
	}
	eng := engine.New(prog, engine.Options{Outgoing: true})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := engine.Input{Dir: engine.In}
	i := 0
	step := func() {
		in.Pkt = &pkts[i%len(pkts)]
		in.Time = base.Add(time.Duration(i) * time.Millisecond)
		eng.Process(&in)
		i++
	}
	// Past the 60 s of an IPv6 queue, the tables and lists are at their size.
	for range 100000 {
		step()
	}
	if a := testing.AllocsPerRun(5000, step); a != 0 {
		t.Errorf("%.2f allocations per packet, want 0", a)
	}
}
