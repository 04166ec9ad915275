package conntrack

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestDelete deletes real flows in a namespace: those of an address, of a
// network (IPv4 and IPv6, source or destination), and leaves the others.
func TestDelete(t *testing.T) {
	nstest.RequireRoot(t, "conntrack")
	ns := nstest.New(t, "ctdel")
	ctx := context.Background()
	add := func(src, dst, sport string) {
		nstest.Run(t, ns, "conntrack", "-I", "-s", src, "-d", dst, "-p", "udp", "--sport", sport, "--dport", "5060", "-t", "60")
	}
	add("203.0.113.10", "192.0.2.10", "5062")
	add("203.0.113.10", "192.0.2.10", "5063")
	add("198.51.100.7", "192.0.2.10", "5062")
	add("192.0.2.10", "198.51.100.8", "5064") // to the banned network
	add("2001:db8:20::11", "2001:db8:10::10", "5062")
	add("203.0.113.99", "192.0.2.10", "5062") // stays
	n, err := Delete(ns, []netip.Prefix{
		netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:20::11/128"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("deleted %d flows, want 5", n)
	}
	out, _ := netns.Run(ctx, ns, nil, "conntrack", "-L")
	out6, _ := netns.Run(ctx, ns, nil, "conntrack", "-L", "-f", "ipv6")
	for _, gone := range []string{"203.0.113.10", "198.51.100.", "2001:db8:20::11"} {
		if strings.Contains(out+out6, gone) {
			t.Errorf("a flow of %s is still there:\n%s%s", gone, out, out6)
		}
	}
	if !strings.Contains(out, "203.0.113.99") {
		t.Errorf("the flow of 203.0.113.99 was deleted too:\n%s", out)
	}
	// No flows left to delete: not an error.
	if n, err := Delete(ns, []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}); err != nil || n != 0 {
		t.Errorf("nothing to delete: %d, %v", n, err)
	}
}
