package jail

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// attackers returns n distinct public sources: IPv4 from 1.0.0.0 up, or
// IPv6 each in its own /64 of 2a00::/16.
func attackers(n int, v6 bool) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range n {
		if v6 {
			var b [16]byte
			b[0], b[1] = 0x2a, 0x00
			b[4], b[5], b[6], b[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			b[15] = 1
			out[i] = netip.AddrFrom16(b)
		} else {
			v := uint32(1<<24 + i)
			out[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	return out
}

// check verifies the jail's invariants: every listed entry is found by the
// index at its own slot, the counts agree, and the free list is disjoint.
func check(t *testing.T, j *Jail) {
	t.Helper()
	seen := 0
	for l := uint8(listFresh); l <= listBanned; l++ {
		n, prev := 0, uint32(0)
		for i := j.lists[l].head; i != 0; i = j.at(i).next {
			e := j.at(i)
			if e.list != l || e.prev != prev {
				t.Fatalf("slot %d: list %d prev %d, want list %d prev %d", i, e.list, e.prev, l, prev)
			}
			if _, s := j.find(&e.key); s != i {
				t.Fatalf("slot %d: index finds %d", i, s)
			}
			prev = i
			n++
		}
		if n != j.lists[l].n || prev != j.lists[l].tail {
			t.Fatalf("list %d: %d entries walked, %d counted; tail %d, want %d", l, n, j.lists[l].n, prev, j.lists[l].tail)
		}
		seen += n
	}
	inIndex := 0
	for _, s := range j.slots {
		if s != 0 {
			inIndex++
		}
	}
	if seen != j.tracked || inIndex != j.tracked {
		t.Fatalf("tracked %d, listed %d, indexed %d", j.tracked, seen, inIndex)
	}
}

func TestDistributedAttackEverySourceBanned(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		const n = 150000
		j := mustNew(t, Config{})
		src := attackers(n, v6)
		now := t0
		bans := 0
		// Round robin: each source's failures are n events apart, all within
		// FindTime (5 × 150,000 events 1 ms apart = 12.5 min... so 0.5 ms).
		for r := range j.Config().MaxRetry {
			for i, a := range src {
				now = now.Add(500 * time.Microsecond)
				d := j.Fail(now, a)
				want := Counted
				if r == j.Config().MaxRetry-1 {
					want = Ban
				}
				if d.Action != want {
					t.Fatalf("v6 %v round %d source %d (%s): %+v, want %v", v6, r, i, a, d, want)
				}
				if d.Action == Ban {
					bans++
				}
			}
		}
		if bans != n || j.Banned() != n || j.Evicted() != 0 {
			t.Errorf("v6 %v: %d of %d banned, %d remembered as banned, %d evicted", v6, bans, n, j.Banned(), j.Evicted())
		}
		check(t, j)
		// A new attacker is banned on its fifth failure, however many bans
		// are held.
		late := netip.MustParseAddr("203.0.113.99")
		for k := range 5 {
			if d := j.Fail(now.Add(time.Duration(k)*time.Second), late); (k == 4) != (d.Action == Ban) {
				t.Fatalf("new attacker's failure %d with %d bans held: %+v", k+1, n, d)
			}
		}
	}
}

func TestIPv6GroupedPerPrefix(t *testing.T) {
	j := mustNew(t, Config{MaxRetry: 3, IPv6Prefix: 64})
	// Three addresses of one /64: one source.
	var d Decision
	for _, s := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abcd:1:2:3"} {
		d = j.Fail(t0, netip.MustParseAddr(s))
	}
	if d.Action != Ban || d.Prefix != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Fatalf("third failure in the /64: %+v", d)
	}
	if _, ok := j.BannedUntil(netip.MustParseAddr("2001:db8:1:2::77"), t0.Add(time.Minute)); !ok {
		t.Errorf("another address of the banned /64 is not banned")
	}
	if d := j.Fail(t0, netip.MustParseAddr("2001:db8:1:3::1")); d.Action != Counted || d.Failures != 1 || d.Prefix.Bits() != 64 {
		t.Errorf("neighbouring /64: %+v", d)
	}
	// IPv4 stays per address.
	if d := j.Fail(t0, netip.MustParseAddr("192.0.2.1")); d.Prefix != netip.MustParsePrefix("192.0.2.1/32") || d.Failures != 1 {
		t.Errorf("IPv4 source: %+v", d)
	}
	if d := j.Fail(t0, netip.MustParseAddr("::ffff:192.0.2.1")); d.Prefix != netip.MustParsePrefix("192.0.2.1/32") || d.Failures != 2 {
		t.Errorf("IPv4-mapped source: %+v", d)
	}
	// Without the option each IPv6 address counts alone.
	k := mustNew(t, Config{MaxRetry: 2})
	k.Fail(t0, netip.MustParseAddr("2001:db8::1"))
	if d := k.Fail(t0, netip.MustParseAddr("2001:db8::2")); d.Action != Counted || d.Prefix != netip.MustParsePrefix("2001:db8::2/128") {
		t.Errorf("per address: %+v", d)
	}
}

func TestIdleAndBannedSourcesAreFreedWithoutPrune(t *testing.T) {
	j := mustNew(t, Config{MaxRetry: 2, FindTime: time.Minute, BanTime: time.Hour, MaxBanTime: 2 * time.Hour, RecidiveWindow: 3 * time.Hour})
	src := attackers(20000, false)
	now := t0
	// Every source banned, then a stream of single failures from other
	// sources for a day: running bans and idle sources are freed as time
	// moves on, by the failures alone.
	for _, a := range src {
		j.Fail(now, a)
		j.Fail(now, a)
	}
	if j.Banned() != len(src) {
		t.Fatalf("%d banned", j.Banned())
	}
	other := attackers(40000, true)
	for i, a := range other {
		now = now.Add(3 * time.Second) // 40,000 × 3 s ≈ 33 h
		j.Fail(now, a)
		if i%997 == 0 {
			check(t, j)
		}
	}
	// Remembered: the failures of the last minute only.
	if j.Tracked() > 25 || j.Banned() != 0 {
		t.Errorf("after 33 h: %d tracked, %d banned", j.Tracked(), j.Banned())
	}
	check(t, j)
}

func TestRecidiveChainSurvivesMemory(t *testing.T) {
	j := mustNew(t, Config{MaxRetry: 1, BanTime: time.Hour, MaxBanTime: 10 * time.Hour, RecidiveWindow: 24 * time.Hour})
	a := netip.MustParseAddr("192.0.2.9")
	d1 := j.Fail(t0, a)
	// Re-offends 20 h later (ban over, within the recidive window): doubled.
	d2 := j.Fail(t0.Add(20*time.Hour), a)
	// 30 h after that: beyond the window, forgotten, a first ban again.
	d3 := j.Fail(t0.Add(50*time.Hour), a)
	if d1.Duration != time.Hour || d2.Duration != 2*time.Hour || d2.Bans != 2 || d3.Duration != time.Hour || d3.Bans != 1 {
		t.Errorf("chain: %v/%d %v/%d %v/%d", d1.Duration, d1.Bans, d2.Duration, d2.Bans, d3.Duration, d3.Bans)
	}
}

// TestRandomOperations drives the jail with random sources, times, prunes
// and evictions and checks the invariants and the decisions against a
// simple model of one source's failures.
func TestRandomOperations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	j := mustNew(t, Config{MaxRetry: 3, FindTime: time.Minute, BanTime: 5 * time.Minute, MaxTracked: 300, RecidiveWindow: 10 * time.Minute, MaxBanTime: 20 * time.Minute})
	src := attackers(500, rng.IntN(2) == 0)
	src = append(src, attackers(500, true)...)
	now := t0
	for step := range 200000 {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		a := src[rng.IntN(len(src))]
		switch d := j.Fail(now, a); d.Action {
		case Ban:
			if d.Until.Sub(now) != d.Duration || d.Duration < 5*time.Minute || d.Duration > 20*time.Minute {
				t.Fatalf("step %d: %+v", step, d)
			}
			if until, ok := j.BannedUntil(a, now); !ok || !until.Equal(d.Until) {
				t.Fatalf("step %d: banned %s not reported banned", step, a)
			}
		case Ignored:
			t.Fatalf("step %d: %+v", step, d)
		}
		if j.Tracked() > 300 {
			t.Fatalf("step %d: %d tracked", step, j.Tracked())
		}
		if step%5000 == 0 {
			check(t, j)
			if rng.IntN(3) == 0 {
				j.Prune(now)
				check(t, j)
			}
		}
	}
	j.Prune(now.Add(time.Hour))
	check(t, j)
	if j.Tracked() != 0 {
		t.Errorf("an hour later %d still tracked", j.Tracked())
	}
}

func TestEvictionUnderFloodKeepsBansAndIsBounded(t *testing.T) {
	j := mustNew(t, Config{MaxTracked: 1000, MaxRetry: 2})
	bannedSrc := attackers(600, false)
	for _, a := range bannedSrc {
		j.Fail(t0, a)
		j.Fail(t0, a)
	}
	flood := attackers(100000, true)
	for i, a := range flood {
		j.Fail(t0.Add(time.Duration(i)*time.Microsecond), a)
	}
	for _, a := range bannedSrc {
		if _, ok := j.BannedUntil(a, t0.Add(time.Second)); !ok {
			t.Fatalf("%s's ban forgotten under a flood of unbanned sources", a)
		}
	}
	if j.Tracked() != 1000 || j.Evicted() != 100000-400 {
		t.Errorf("tracked %d, evicted %d", j.Tracked(), j.Evicted())
	}
	check(t, j)
}

func TestBatcher(t *testing.T) {
	var mu sync.Mutex
	var batches [][]BanOrder
	b := &Batcher{Interval: 20 * time.Millisecond, MaxBatch: 100, Flush: func(_ context.Context, bans []BanOrder) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, slices.Clone(bans))
		if len(bans) == 7 {
			return errors.New("refused")
		}
		return nil
	}}
	var failed []BanOrder
	b.Failed = func(bans []BanOrder, err error) { failed = append(failed, bans...) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	ban := func(i int) BanOrder {
		return BanOrder{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), Duration: time.Hour}
	}
	// 250 at once: two full batches at once and the rest after the interval.
	for i := range 250 {
		b.Add(ban(i))
	}
	waitFor := func(n int) {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			total := 0
			for _, x := range batches {
				total += len(x)
			}
			mu.Unlock()
			if total == n {
				return
			}
		}
		t.Fatalf("never flushed %d", n)
	}
	waitFor(250)
	mu.Lock()
	for _, x := range batches {
		if len(x) > 100 {
			t.Errorf("batch of %d", len(x))
		}
	}
	if len(batches) > 4 || batches[0][0] != ban(0) || batches[len(batches)-1][len(batches[len(batches)-1])-1] != ban(249) {
		t.Errorf("%d batches, not in order", len(batches))
	}
	mu.Unlock()
	// A refused batch is reported.
	for i := range 7 {
		b.Add(ban(i))
	}
	waitFor(257)
	// Bans still waiting when Run stops are flushed on the way out.
	b.Interval = time.Hour
	for i := range 3 {
		b.Add(ban(i))
	}
	cancel()
	<-done
	waitFor(260)
	if len(failed) != 7 {
		t.Errorf("%d failed bans reported, want 7", len(failed))
	}
}

// BenchmarkDistributedAttack: 1M sources (IPv4, then IPv6 each in its own
// /64) × MaxRetry failures round robin within FindTime; every source must
// be banned. Reports the jail's bans/s, the heap per source, and the p99
// time from a failure to its decision for new attackers while the million
// bans are held.
func BenchmarkDistributedAttack(b *testing.B) {
	for _, family := range []string{"ipv4", "ipv6"} {
		b.Run(family+"-1M", func(b *testing.B) {
			const n = 1 << 20
			src := attackers(n, family == "ipv6")
			late := attackers(n+100000, family == "ipv6")[n:]
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				j, _ := New(Config{})
				now := t0
				bans := 0
				start := time.Now()
				for range j.Config().MaxRetry {
					for _, a := range src {
						now = now.Add(100 * time.Microsecond)
						if j.Fail(now, a).Action == Ban {
							bans++
						}
					}
				}
				elapsed := time.Since(start)
				if bans != n {
					b.Fatalf("%d of %d banned", bans, n)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				lat := make([]time.Duration, 0, len(late)*5)
				for range j.Config().MaxRetry {
					for _, a := range late {
						now = now.Add(100 * time.Microsecond)
						t := time.Now()
						j.Fail(now, a)
						lat = append(lat, time.Since(t))
					}
				}
				if j.Banned() != n+len(late) {
					b.Fatalf("%d banned", j.Banned())
				}
				slices.Sort(lat)
				b.ReportMetric(float64(bans)/elapsed.Seconds(), "bans/s")
				b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*j.Config().MaxRetry), "ns/failure")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns/decision")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/source")
				runtime.KeepAlive(j)
			}
		})
	}
}

// BenchmarkFailWithBansHeld measures one new attacker's failures with 1,000
// and with 1,000,000 bans held: the ratio shows no ban waits on the size of
// the ban list.
func BenchmarkFailWithBansHeld(b *testing.B) {
	for _, held := range []int{1000, 1000000} {
		b.Run(map[int]string{1000: "1k", 1000000: "1M"}[held], func(b *testing.B) {
			j, _ := New(Config{MaxRetry: 1})
			now := t0
			for _, a := range attackers(held, false) {
				j.Fail(now, a)
			}
			fresh := attackers(held+1<<20, true)[held:]
			b.ResetTimer()
			for i := range b.N {
				now = now.Add(time.Microsecond)
				if j.Fail(now, fresh[i&(1<<20-1)]).Action == Counted {
					b.Fatal("not banned")
				}
			}
		})
	}
}

func TestPruneAtMostInRounds(t *testing.T) {
	j := mustNew(t, Config{MaxRetry: 1, BanTime: time.Minute, MaxBanTime: time.Minute, RecidiveWindow: time.Minute})
	for _, a := range attackers(10000, false) {
		j.Fail(t0, a)
	}
	rounds, later := 0, t0.Add(time.Hour)
	for {
		n := j.PruneAtMost(later, 1000)
		if n > 2000 {
			t.Fatalf("round forgot %d", n)
		}
		rounds++
		if n < 1000 {
			break
		}
	}
	if j.Tracked() != 0 || rounds < 10 {
		t.Errorf("%d rounds, %d left", rounds, j.Tracked())
	}
	check(t, j)
}
