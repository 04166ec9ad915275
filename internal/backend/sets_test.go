package backend_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
)

// nftSets are the banned list kept in two sets, as nftables keeps it, and
// scanners in one, IPv4 only.
var nftSets = []backend.Set{
	{Name: "banned4", List: "banned", Family: ir.IPv4},
	{Name: "banned-net4", List: "banned", Family: ir.IPv4, Networks: true},
	{Name: "scanners4", List: "scanners", Family: ir.IPv4},
}

func TestSetFor(t *testing.T) {
	for _, tc := range []struct{ list, addr, want, err string }{
		{"banned", "203.0.113.1/32", "banned4", ""},
		{"banned", "198.51.100.0/24", "banned-net4", ""},
		{"scanners", "203.0.113.1/32", "scanners4", ""},
		{"scanners", "203.0.113.0/24", "", "holds single addresses only"},
		{"banned", "2001:db8::1/128", "", "no ipv6 set for the banned list (is ipv6 off in the policy?)"},
		{"trapped", "203.0.113.1/32", "", "no ipv4 set for the trapped list"},
	} {
		s, err := backend.SetFor(nftSets, tc.list, netip.MustParsePrefix(tc.addr))
		if tc.err == "" && (err != nil || s.Name != tc.want) {
			t.Errorf("%s %s: %s, %v; want %s", tc.list, tc.addr, s.Name, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %s: %v; want an error saying %q", tc.list, tc.addr, err, tc.err)
		}
	}
	if tw, ok := backend.Twin(nftSets, nftSets[0]); !ok || tw.Name != "banned-net4" {
		t.Errorf("twin of banned4: %v %v", tw, ok)
	}
	if _, ok := backend.Twin(nftSets, nftSets[2]); ok {
		t.Error("scanners4 has a twin")
	}
}

func TestFakeStore(t *testing.T) {
	f := backend.NewFakeStore(nftSets)
	ctx := context.Background()
	e := func(list, p string, d time.Duration, c string) backend.Entry {
		return backend.Entry{List: list, Prefix: netip.MustParsePrefix(p), Remaining: d, Comment: c}
	}
	if _, _, err := f.Add(ctx, []backend.Entry{e("banned", "203.0.113.1/32", time.Hour, "fraud"), e("banned", "198.51.100.0/24", 0, ""), e("scanners", "203.0.113.2/32", 0, "")}); err != nil {
		t.Fatal(err)
	}
	// One refused entry: nothing changes.
	if _, _, err := f.Add(ctx, []backend.Entry{e("scanners", "203.0.113.3/32", 0, ""), e("scanners", "203.0.113.0/24", 0, "")}); err == nil {
		t.Error("a network went into scanners")
	}
	if err := f.Delete(ctx, []backend.Entry{e("banned", "198.51.100.0/24", 0, ""), e("banned", "192.0.2.9/32", 0, "")}); err != nil {
		t.Fatal(err)
	}
	if err := f.Replace(ctx, "scanners", []backend.Entry{e("scanners", "203.0.113.4/32", time.Minute, "")}); err != nil {
		t.Fatal(err)
	}
	want := "banned 203.0.113.1 1h0m0s \"fraud\"\nscanners 203.0.113.4 1m0s"
	if got := f.String(); got != want {
		t.Errorf("fake:\n%s\nwant:\n%s", got, want)
	}
	if !f.Has("banned", netip.MustParseAddr("::ffff:203.0.113.1")) || f.Has("scanners", netip.MustParseAddr("203.0.113.2")) {
		t.Error("Has")
	}
	f.Err = errors.New("boom")
	if _, err := f.Read(ctx, "banned"); err == nil {
		t.Error("Err not returned")
	}
}

func TestToolError(t *testing.T) {
	for _, tc := range []struct {
		tool, stderr string
		notFound     bool
		exist        bool
	}{
		{"nft", "Error: No such file or directory\nlist table inet sipwall\n", true, false},
		{"ipset", "ipset v7.19: The set with the given name does not exist", true, false},
		{"conntrack", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.", true, false},
		{"nft", "Error: Could not process rule: File exists", false, true},
		{"ipset", "ipset v7.19: Syntax error: cannot parse", false, false},
		{"iptables-restore", "No such file or directory", false, false},
	} {
		err := error(backend.NewToolError(tc.tool, []string{"x"}, tc.stderr, errors.New("exit status 1")))
		if backend.IsNotFound(err) != tc.notFound || backend.IsExist(err) != tc.exist {
			t.Errorf("%s %q: not found %v, exists %v", tc.tool, tc.stderr, backend.IsNotFound(err), backend.IsExist(err))
		}
		if !strings.HasPrefix(err.Error(), tc.tool+": ") {
			t.Errorf("message %q does not name the tool", err)
		}
	}
}
