package crowdsec

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
)

// stream102k is a LAPI startup answer the size of the fleet workload:
// 100,000 IPv4 addresses, 1,000 ranges and 1,000 IPv6 addresses.
func stream102k() []byte {
	var s Stream
	id := int64(1)
	add := func(scope, v string) {
		s.New = append(s.New, Decision{ID: id, Origin: "crowdsec", Scenario: "crowdsecurity/ssh-bf", Scope: scope, Type: "ban", Value: v, Duration: "3h59m58.123456s"})
		id++
	}
	base := netip.MustParseAddr("100.64.0.0").As4()
	for i := 0; i < 100000; i++ {
		b := base
		b[2], b[3] = byte(i>>8), byte(i)
		b[1] += byte(i >> 16)
		add("Ip", netip.AddrFrom4(b).String())
	}
	for i := 0; i < 1000; i++ {
		add("Range", fmt.Sprintf("100.%d.%d.0/24", 128+i/256, i%256))
	}
	for i := 0; i < 1000; i++ {
		add("Ip", fmt.Sprintf("2001:db8:1::%x", i+1))
	}
	b, _ := json.Marshal(s)
	return b
}

// BenchmarkStartup102k: a bouncer's startup pull of 102,000 decisions,
// from the HTTP answer to the list handed to the set store (an in-memory
// one: scripts/bench-crowdsec measures the kernel's part). It reports the
// heap the bouncer keeps per decision.
func BenchmarkStartup102k(b *testing.B) {
	body := stream102k()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	c, _ := NewClient(Config{URL: srv.URL, APIKey: "k"})
	var sink nullSink
	b.ReportAllocs()
	var kept uint64
	for i := 0; i < b.N; i++ {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		before := m.HeapAlloc
		bo := &Bouncer{Client: c, Decisions: NewDecisions(nil), Sink: &sink}
		ch, err := bo.Once(context.Background(), true)
		if err != nil || len(ch.Set) != 102000 {
			b.Fatalf("%v, %d set", err, len(ch.Set))
		}
		ch = nil
		runtime.GC()
		runtime.ReadMemStats(&m)
		kept = m.HeapAlloc - before
		runtime.KeepAlive(bo)
	}
	b.ReportMetric(float64(kept)/102000, "kept-B/decision")
}

type nullSink struct{ n int }

func (s *nullSink) Apply(_ context.Context, ch *Change) error { s.n += len(ch.Set); return nil }

// BenchmarkSinkEntries is the conversion to set-store entries alone.
func BenchmarkSinkEntries(b *testing.B) {
	bans := make([]Ban, 102000)
	now := time.Now()
	for i := range bans {
		bans[i] = Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32), Until: now.Add(time.Hour), Reason: "r"}
	}
	s := StoreSink{Store: backend.NewFakeStore(nil), Now: func() time.Time { return now }}
	for i := 0; i < b.N; i++ {
		if len(s.entries(bans)) != len(bans) {
			b.Fatal("lost entries")
		}
	}
}
