package ban

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/iptables"
	"github.com/sipwall/sipwall/internal/backend/nftables"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	rendeript "github.com/sipwall/sipwall/internal/render/iptables"
	"github.com/sipwall/sipwall/internal/render/nft"
)

func labPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p, err := policy.LoadFile(filepath.Join(filepath.Dir(file), "../../../examples/lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loadRuleset loads the lab ruleset's sets into ns and returns a Banner
// writing through the backend's set store.
func loadRuleset(t *testing.T, ns string, name backend.Name) Store {
	t.Helper()
	rs, err := compile.Compile(labPolicy(t), compile.Options{Backend: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := backend.Host{NS: ns}
	if name == backend.NFTables {
		script, err := nft.Render(rs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := netns.Run(ctx, ns, strings.NewReader(script), "nft", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		be := nftables.New(h)
		return Store{be.Store(be.Sets(rs))}
	}
	out, err := rendeript.Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Run(ctx, ns, strings.NewReader(out.IPSets), "ipset", "-exist", "restore"); err != nil {
		t.Fatal(err)
	}
	be := iptables.New(h)
	return Store{be.Store(be.Sets(rs))}
}

func TestNFTSets(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "bannft")
	b := loadRuleset(t, ns, backend.NFTables)
	ctx := context.Background()
	v4, v6 := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8:20::7")
	steps := []struct {
		list    string
		addr    netip.Addr
		timeout time.Duration
	}{
		{compile.SetBanned, v4, time.Hour},
		{compile.SetBanned, v6, 0},
		{compile.SetScanners, v4, 0},
		{compile.SetAdmitted, netip.MustParseAddr("198.51.100.21"), 0},
		{compile.SetAllowed, netip.MustParseAddr("198.51.100.22"), 30 * time.Minute},
	}
	for _, s := range steps {
		if err := b.Add(ctx, s.list, s.addr, s.timeout); err != nil {
			t.Fatalf("add %s %s: %v", s.list, s.addr, err)
		}
		// Twice is fine.
		if err := b.Add(ctx, s.list, s.addr, s.timeout); err != nil {
			t.Fatalf("add again %s %s: %v", s.list, s.addr, err)
		}
	}
	list := func(set string) string { return nstest.Run(t, ns, "nft", "list", "set", "inet", "sipwall", set) }
	if got := list("banned4"); !strings.Contains(got, "203.0.113.7 timeout 1h") {
		t.Errorf("banned4:\n%s", got)
	}
	if got := list("banned6"); !strings.Contains(got, "2001:db8:20::7") {
		t.Errorf("banned6:\n%s", got)
	}
	if got := list("scanners4"); !strings.Contains(got, "203.0.113.7") {
		t.Errorf("scanners4:\n%s", got)
	}
	if got := list("admitted4"); !strings.Contains(got, "198.51.100.21") {
		t.Errorf("admitted4:\n%s", got)
	}
	if got := list("allowed4"); !strings.Contains(got, "198.51.100.22 timeout 30m") {
		t.Errorf("allowed4:\n%s", got)
	}
	// Addresses go to the hash sets, networks banned by hand to the
	// interval sets banned-net*: an address inside a banned network is
	// listed already, and removing it leaves the network.
	if got := nstest.Run(t, ns, "nft", "list", "set", "inet", "sipwall", "banned4"); strings.Contains(got, "interval") {
		t.Errorf("banned4 is an interval set:\n%s", got)
	}
	nstest.Run(t, ns, "nft", "add", "element", "inet", "sipwall", "banned-net4", "{ 192.0.2.128/25 }")
	inside := netip.MustParseAddr("192.0.2.200")
	if err := b.Add(ctx, compile.SetBanned, inside, 0); err != nil {
		t.Errorf("address inside a banned network: %v", err)
	}
	if got := list("banned4"); strings.Contains(got, "192.0.2.200") {
		t.Errorf("banned4 after banning an address inside a banned network:\n%s", got)
	}
	if err := b.Remove(ctx, compile.SetBanned, inside); err != nil {
		t.Errorf("remove the address inside a banned network: %v", err)
	}
	for _, s := range steps {
		if err := b.Remove(ctx, s.list, s.addr); err != nil {
			t.Fatalf("remove %s %s: %v", s.list, s.addr, err)
		}
	}
	if got := list("banned4"); strings.Contains(got, "203.0.113.7") || strings.Contains(got, "192.0.2.200") {
		t.Errorf("banned4 after remove:\n%s", got)
	}
	if got := list("banned-net4"); !strings.Contains(got, "192.0.2.128/25") {
		t.Errorf("banned-net4 after remove:\n%s", got)
	}
	if got := list("admitted4"); strings.Contains(got, "198.51.100.21") {
		t.Errorf("admitted4 after remove:\n%s", got)
	}
	if err := b.Remove(ctx, compile.SetBanned, v4); err != nil {
		t.Errorf("removing an absent address: %v", err)
	}
}

func TestIPSets(t *testing.T) {
	nstest.RequireRoot(t, "ipset")
	ns := nstest.New(t, "banipset")
	b := loadRuleset(t, ns, backend.IPTables)
	ctx := context.Background()
	a := netip.MustParseAddr("203.0.113.9")
	if err := b.Add(ctx, compile.SetBanned, a, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, compile.SetBanned, a, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, compile.SetScanners, netip.MustParseAddr("2001:db8:20::9"), 0); err != nil {
		t.Fatal(err)
	}
	if got := nstest.Run(t, ns, "ipset", "list", "sipwall-banned4"); !strings.Contains(got, "203.0.113.9 timeout 7") {
		t.Errorf("sipwall-banned4:\n%s", got)
	}
	if got := nstest.Run(t, ns, "ipset", "list", "sipwall-scanners6"); !strings.Contains(got, "2001:db8:20::9 timeout 0") {
		t.Errorf("sipwall-scanners6:\n%s", got)
	}
	if err := b.Remove(ctx, compile.SetBanned, a); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, compile.SetBanned, a); err != nil {
		t.Errorf("removing an absent address: %v", err)
	}
	if got := nstest.Run(t, ns, "ipset", "list", "sipwall-banned4"); strings.Contains(got, "203.0.113.9") {
		t.Errorf("after remove:\n%s", got)
	}
}

func TestFake(t *testing.T) {
	var f Fake
	ctx := context.Background()
	f.Add(ctx, "banned", netip.MustParseAddr("::ffff:203.0.113.1"), time.Hour)
	f.Add(ctx, "admitted", netip.MustParseAddr("198.51.100.1"), 0)
	f.Add(ctx, "banned", netip.MustParseAddr("203.0.113.2"), 0)
	f.Remove(ctx, "banned", netip.MustParseAddr("203.0.113.2"))
	want := "admitted 198.51.100.1 default\nbanned 203.0.113.1 1h0m0s"
	if got := f.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !f.Has("banned", netip.MustParseAddr("203.0.113.1")) {
		t.Error("Has")
	}
	f.Err = errors.New("boom")
	if err := f.Add(ctx, "banned", netip.MustParseAddr("203.0.113.3"), 0); err == nil {
		t.Error("Err not returned")
	}
}
