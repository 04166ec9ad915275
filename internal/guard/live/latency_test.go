package live

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/nftables"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/jail"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// timedBanner reports when each ban was acknowledged by the kernel.
type timedBanner struct {
	ban.Banner
	done chan banned
}

type banned struct {
	addr netip.Addr
	at   time.Time
}

func (b timedBanner) Add(ctx context.Context, list string, a netip.Addr, timeout time.Duration) error {
	err := b.Banner.Add(ctx, list, a, timeout)
	if err == nil && list == compile.SetBanned {
		b.done <- banned{a, time.Now()}
	}
	return err
}

// TestBanLatency measures, in a namespace holding the lab's nftables
// ruleset, the time from appending the fifth failure line of an address
// to the log until the kernel has acknowledged its element in banned4,
// over many addresses; docs/guard.md reports the numbers
// (SIPWALL_LATENCY_RUNS sets the number of runs, default 40).
func TestBanLatency(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "lat")
	_, file, _, _ := runtime.Caller(0)
	p, err := policy.LoadFile(filepath.Join(filepath.Dir(file), "../../../examples/lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: backend.NFTables})
	if err != nil {
		t.Fatal(err)
	}
	script, err := nft.Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Run(context.Background(), ns, strings.NewReader(script), "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	be := nftables.New(backend.Host{NS: ns})
	nb := ban.Store{Sets: be.Store(be.Sets(rs))}

	runs := 40
	if s := os.Getenv("SIPWALL_LATENCY_RUNS"); s != "" {
		fmt.Sscan(s, &runs)
	}
	log := filepath.Join(t.TempDir(), "security")
	os.WriteFile(log, nil, 0o644)
	tb := timedBanner{Banner: nb, done: make(chan banned, 1)}
	g, err := New(Config{Logs: []string{log}, Banner: tb,
		Jail: jail.Config{MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(50 * time.Millisecond)

	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lat []time.Duration
	for i := 0; i < runs; i++ {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%250)})
		if i >= 250 {
			addr = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%250)})
		}
		for k := 0; k < 4; k++ {
			f.WriteString(failLine(addr.String(), k))
		}
		time.Sleep(30 * time.Millisecond) // the first four are counted
		start := time.Now()
		f.WriteString(failLine(addr.String(), 4))
		select {
		case b := <-tb.done:
			if b.addr != addr {
				t.Fatalf("banned %s, want %s", b.addr, addr)
			}
			lat = append(lat, b.at.Sub(start))
		case <-time.After(5 * time.Second):
			t.Fatalf("run %d: %s not banned within 5 s", i, addr)
		}
		// Spread the runs over the poll interval's phase.
		time.Sleep(time.Duration(i%7) * time.Millisecond)
	}
	// The kernel holds them all.
	listed := nstest.Run(t, ns, "nft", "list", "set", "inet", "sipwall", "banned4")
	for i := 0; i < min(runs, 250); i++ {
		if a := fmt.Sprintf("203.0.113.%d ", 1+i); !strings.Contains(listed, a) {
			t.Errorf("%s not in banned4", a)
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("log line to ban in the kernel, %d runs: p50 %v, p90 %v, p99 %v, max %v",
		len(lat), pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1])
	// The speed (p50 a few ms, p99 tens of ms on an idle machine) is
	// measured and reported here and in the README; what fails the test is
	// a ban that waits for something else (a poll, a full-list read): a
	// shared 2-core CI run must still ban within a second.
	if p99 := pct(0.99); p99 > time.Second {
		t.Errorf("p99 %v: a ban waited for something", p99)
	}
}
