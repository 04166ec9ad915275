package lists_test

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	sw "github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// addrs returns n distinct IPv4 addresses in 10.0.0.0/8 (none of them the lab's).
func addrs(n int) []lists.Item {
	out := make([]lists.Item, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out[i] = lists.Item{Prefix: netip.PrefixFrom(a, 32)}
	}
	return out
}

func flush(b *testing.B, l *lab, backend string) {
	if backend == "iptables" {
		nstest.Run(b, l.srv, "ipset", "flush", "sipwall-banned4")
	} else {
		nstest.Run(b, l.srv, "nft", "flush", "set", "inet", "sipwall", "banned4")
	}
}

// BenchmarkBan100k loads 100,000 bans in one transaction into an empty list.
func BenchmarkBan100k(b *testing.B) {
	items := addrs(100000)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			l := newLab(b, backend, false)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				flush(b, l, backend)
				b.StartTimer()
				res, err := l.store.Add(ctx, "banned", items)
				if err != nil || res.Added != len(items) {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// BenchmarkBanOne bans one address into a list of 100,000: Add is the set
// change alone (the same address again and again: after the first, a
// replacement), add-new a new address each time, add-net a new /24 each
// time, Ban adds the conntrack cleanup.
func BenchmarkBanOne(b *testing.B) {
	for _, backend := range backends {
		l := newLab(b, backend, false)
		ctx := context.Background()
		if _, err := l.store.Add(ctx, "banned", addrs(100000)); err != nil {
			b.Fatal(err)
		}
		one := []lists.Item{{Prefix: netip.MustParsePrefix("203.0.113.99/32"), For: time.Hour, Comment: "bench"}}
		b.Run(backend+"/add", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := l.store.Add(ctx, "banned", one); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The same without `ip netns exec` in front of every tool: the
		// benchmark's thread enters the namespace and the tools inherit it,
		// as on a real host.
		direct := *l.store
		be, err := sw.Open(sw.Name(backend), sw.Host{})
		if err != nil {
			b.Fatal(err)
		}
		direct.Backend, direct.Kernel = be, be.Store(direct.Sets)
		b.Run(backend+"/add-direct", func(b *testing.B) {
			err := netns.Do(l.srv, func() error {
				for i := 0; i < b.N; i++ {
					if _, err := direct.Add(ctx, "banned", one); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
		// A new address every time: nothing to replace, so no delete in
		// the transaction (add-direct bans the same address again).
		b.Run(backend+"/add-new-direct", func(b *testing.B) {
			err := netns.Do(l.srv, func() error {
				for i := 0; i < b.N; i++ {
					a := netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
					if _, err := direct.Add(ctx, "banned", []lists.Item{{Prefix: netip.PrefixFrom(a, 32), For: time.Hour, Comment: "bench"}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
		// A new network every time: with nftables it goes to the interval
		// set banned-net4, and the list's addresses it would replace are
		// looked for by reading the hash set banned4.
		b.Run(backend+"/add-net-direct", func(b *testing.B) {
			err := netns.Do(l.srv, func() error {
				for i := 0; i < b.N; i++ {
					a := netip.AddrFrom4([4]byte{172, 17, byte(i), 0})
					if _, err := direct.Add(ctx, "banned", []lists.Item{{Prefix: netip.PrefixFrom(a, 24), For: time.Hour, Comment: "bench"}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
		b.Run(backend+"/ban+conntrack", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := l.store.Ban(ctx, one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPacketRate sends UDP packets from a source that is not banned
// through the lab ruleset for two seconds, with the banned list empty and
// with 1,000,000 entries, and reports the packets per second the server
// receives (pps). The set lookup is a hash (ipset) or interval tree (nft):
// the rate must not depend on the list's size.
func BenchmarkPacketRate(b *testing.B) {
	for _, backend := range backends {
		for _, size := range []int{0, 1000000} {
			name := backend + "/empty"
			if size > 0 {
				name = backend + "/1M"
			}
			b.Run(name, func(b *testing.B) {
				l := newLab(b, backend, true)
				ctx := context.Background()
				if size > 0 {
					start := time.Now()
					if _, err := l.store.Add(ctx, "banned", addrs(size)); err != nil {
						b.Fatal(err)
					}
					b.Logf("loaded %d bans in %s", size, time.Since(start))
				}
				// RTP to an allowed port passes the raw table's banned check
				// and the filter table's rules.
				var srv *net.UDPConn
				if err := netns.Do(l.srv, func() (err error) {
					srv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 10000})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				srv.SetReadBuffer(8 << 20)
				var got atomic.Int64
				go func() {
					buf := make([]byte, 2048)
					for {
						if _, _, err := srv.ReadFromUDP(buf); err != nil {
							return
						}
						got.Add(1)
					}
				}()
				var cli *net.UDPConn
				if err := netns.Do(l.inet, func() (err error) {
					cli, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.51.100.21")}, &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 10000})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				defer cli.Close()
				payload := make([]byte, 172) // a G.711 20 ms RTP packet
				b.ResetTimer()
				var sent int64
				for i := 0; i < b.N; i++ {
					got.Store(0)
					deadline := time.Now().Add(2 * time.Second)
					for time.Now().Before(deadline) {
						for j := 0; j < 64; j++ {
							cli.Write(payload)
							sent++
						}
					}
					time.Sleep(100 * time.Millisecond)
					b.ReportMetric(float64(got.Load())/2, "pps")
				}
				b.ReportMetric(float64(sent)/2/float64(b.N), "sent/s")
			})
		}
	}
}
