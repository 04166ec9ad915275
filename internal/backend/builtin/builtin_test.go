package builtin_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	_ "github.com/sipwall/sipwall/internal/backend/builtin"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

func TestRegistry(t *testing.T) {
	got := fmt.Sprint(backend.Registered())
	if got != "[iptables nftables]" {
		t.Errorf("registered: %s", got)
	}
	if _, err := backend.Parse("xdp"); err == nil || !strings.Contains(err.Error(), "iptables, nftables") {
		t.Errorf("parse of an unknown backend: %v", err)
	}
}

// install loads the lab policy's ruleset with backend n in a fresh
// namespace.
func install(t *testing.T, n backend.Name) (backend.Backend, []backend.Set) {
	t.Helper()
	p, err := policy.LoadFile("../../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: n})
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(rs, n)
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.Open(n, backend.Host{NS: nstest.New(t, "be"+string(n[:3]))})
	if err != nil {
		t.Fatal(err)
	}
	sets := be.Sets(rs)
	if err := be.Install(context.Background(), backend.Ruleset{Files: files, Sets: sets}, nil, &backend.Memory{}); err != nil {
		t.Fatal(err)
	}
	return be, sets
}

func entry(list, addr string, d time.Duration, comment string) backend.Entry {
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		a := netip.MustParseAddr(addr)
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return backend.Entry{List: list, Prefix: p, Remaining: d, Comment: comment}
}

// show prints entries as "list addr comment", sorted.
func show(es []backend.Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s %s", e.List, e.Addr(), e.Comment))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestSetStore runs every registered backend's set store against the real
// kernel: add, read, replace, delete (with an entry not listed), the sets'
// shapes read back from the kernel, counters, and errors by kind.
func TestSetStore(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	ctx := context.Background()
	for _, n := range backend.Registered() {
		t.Run(string(n), func(t *testing.T) {
			be, sets := install(t, n)
			st := be.Store(sets)
			added, _, err := st.Add(ctx, []backend.Entry{
				entry("banned", "203.0.113.5", time.Hour, "toll fraud"),
				entry("banned", "198.51.100.0/24", 0, "a network"),
				entry("banned", "2001:db8:bad::1", 0, ""),
				entry("scanners", "203.0.113.6", 0, ""),
			})
			if err != nil || added != 4 {
				t.Fatalf("add: %d, %v", added, err)
			}
			es, err := st.Read(ctx, "banned", "scanners")
			if err != nil {
				t.Fatal(err)
			}
			want := "banned 198.51.100.0/24 a network\nbanned 2001:db8:bad::1 \nbanned 203.0.113.5 toll fraud\nscanners 203.0.113.6 "
			if got := show(es); got != want {
				t.Errorf("read:\n%s\nwant:\n%s", got, want)
			}
			for _, e := range es {
				if e.Addr() == "203.0.113.5" && (e.Remaining < 59*time.Minute || e.Remaining > time.Hour) {
					t.Errorf("203.0.113.5 has %s left, want about 1h", e.Remaining)
				}
			}

			// Replace: the list holds exactly the new entries.
			for _, round := range [][]backend.Entry{
				{entry("allowed", "192.0.2.7", 0, "phone"), entry("allowed", "10.0.0.0/8", 0, "office")},
				{entry("allowed", "192.0.2.8", time.Minute, ""), entry("allowed", "2001:db8:20::/48", 0, "v6")},
			} {
				if err := st.Replace(ctx, "allowed", round); err != nil {
					t.Fatal(err)
				}
				es, err := st.Read(ctx, "allowed")
				if err != nil {
					t.Fatal(err)
				}
				if got, want := show(es), show(round); got != want {
					t.Errorf("after replace:\n%s\nwant:\n%s", got, want)
				}
			}

			// Delete: an entry not listed is ignored, the others go.
			err = st.Delete(ctx, []backend.Entry{entry("banned", "203.0.113.5", 0, ""), entry("banned", "203.0.113.99", 0, "")})
			if err != nil {
				t.Fatalf("delete with an entry not listed: %v", err)
			}
			es, _ = st.Read(ctx, "banned")
			if got := show(es); strings.Contains(got, "203.0.113.5") || !strings.Contains(got, "198.51.100.0/24") {
				t.Errorf("after delete:\n%s", got)
			}

			// The shapes the kernel has are the shapes from the IR.
			read, err := be.ReadSets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			shape := func(ss []backend.Set) string {
				var out []string
				for _, s := range ss {
					out = append(out, fmt.Sprintf("%s %s %s networks=%v static=%v timeout=%s", s.Name, s.List, s.Family, s.Networks, s.Static, s.Timeout))
				}
				sort.Strings(out)
				return strings.Join(out, "\n")
			}
			if got, want := shape(read), shape(sets); got != want {
				t.Errorf("sets read from the kernel:\n%s\nwant (from the IR):\n%s", got, want)
			}

			// The longest timeout the backend says it takes, it takes
			// (added and replaced: a fleet's decisions are capped to it).
			long := entry("banned", "203.0.113.99", be.MaxTimeout(), "longest")
			if _, _, err := st.Add(ctx, []backend.Entry{long}); err != nil {
				t.Errorf("add with MaxTimeout %v: %v", be.MaxTimeout(), err)
			}
			if err := st.Delete(ctx, []backend.Entry{long}); err != nil {
				t.Error(err)
			}

			// An entry for a set the ruleset lacks, a network for a list
			// of addresses: refused before anything runs.
			if _, _, err := be.Store(sets[:1]).Add(ctx, []backend.Entry{entry("trapped", "203.0.113.7", 0, "")}); !errors.Is(err, backend.ErrNoSet) {
				t.Errorf("add to a list without a set: %v", err)
			}
			if _, _, err := st.Add(ctx, []backend.Entry{entry("scanners", "203.0.113.0/24", 0, "")}); err == nil {
				t.Error("a network went into the scanners list")
			}

			cs, err := be.Counters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			drops, comments := 0, 0
			for _, c := range cs {
				if c.Verdict == "drop" {
					drops++
				}
				if c.Comment != "" {
					comments++
				}
			}
			if drops == 0 || comments == 0 {
				t.Errorf("%d counters, %d that drop, %d with comments", len(cs), drops, comments)
			}

			// Without the ruleset: nothing to fingerprint, the lists are
			// not loaded (nftables) and say so by kind.
			fp, err := be.Fingerprint(ctx)
			if err != nil || fp == "" {
				t.Fatalf("fingerprint: %q, %v", fp, err)
			}
			if err := be.Uninstall(ctx, &backend.Memory{}); err != nil {
				t.Fatal(err)
			}
			if fp, err := be.Fingerprint(ctx); err != nil || strings.Contains(fp, "sipwall-input") {
				t.Errorf("fingerprint after uninstall: %q, %v", fp, err)
			}
			if n == backend.NFTables {
				if _, err := st.Read(ctx, "banned"); !errors.Is(err, backend.ErrNotLoaded) {
					t.Errorf("read without the table: %v", err)
				}
			}
		})
	}
}
