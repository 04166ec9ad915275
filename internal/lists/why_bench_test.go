package lists_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/netns"
)

// BenchmarkWhy1M: why of an address in a banned list of 1,000,000
// entries (lists.Store.Why, what `sipwall why` runs), and in the same run
// the anchor: the kernel tool's own answer for that address (`nft get
// element` / `ipset test`), run as a process.
//
//	SIPWALL_REQUIRE_ROOT=1 go test ./internal/lists -run '^$' -bench Why1M -benchtime 5x
func BenchmarkWhy1M(b *testing.B) {
	items := addrs(1000000)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			l := newLab(b, backend, false)
			ctx := context.Background()
			if _, err := l.store.Add(ctx, "banned", items); err != nil {
				b.Fatal(err)
			}
			a := netip.MustParsePrefix("10.7.8.9/32")
			b.Run("why", func(b *testing.B) {
				for b.Loop() {
					r, err := l.store.Why(ctx, a)
					if err != nil || len(r) != 1 || r[0].Since.IsZero() {
						b.Fatal(r, err)
					}
				}
			})
			b.Run("anchor", func(b *testing.B) {
				argv := []string{"nft", "get", "element", "inet", "sipwall", "banned4", "{ 10.7.8.9 }"}
				if backend == "iptables" {
					argv = []string{"ipset", "test", "sipwall-banned4", "10.7.8.9"}
				}
				for b.Loop() {
					if _, err := netns.Run(ctx, l.srv, nil, argv...); err != nil {
						b.Fatal(err)
					}
				}
			})
			if backend == "nftables" {
				// No whole-list read here: a dump of a 1,000,000-element
				// nftables set takes the kernel minutes (it walks the set
				// from its start for each message of the dump).
				return
			}
			b.Run("lists", func(b *testing.B) {
				for b.Loop() {
					found, err := l.store.Find(ctx, lists.Query{})
					if err != nil || len(found) != len(items) {
						b.Fatal(len(found), err)
					}
				}
			})
			b.Run("anchor-ipset-save", func(b *testing.B) {
				for b.Loop() {
					if _, err := netns.Run(ctx, l.srv, nil, "ipset", "save"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
