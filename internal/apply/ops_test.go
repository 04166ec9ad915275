package apply_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestRollbackHistory: status remembers every rollback and removal, when,
// why and between which generations; a rollback with nothing to go back to
// is refused and records nothing.
func TestRollbackHistory(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset")
	ctx := context.Background()
	ns := nstest.New(t, "hist")
	m := newManager(t, ns)
	clock := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return clock }
	first := generation(t, backend.IPTables, "")
	if _, err := m.Apply(ctx, first, apply.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	second := generation(t, backend.IPTables, "ssh: {ports: [2222]}\nsip:\n  hostnames: [pbx.example-secret.net]\n")
	second.PolicyFile = "second.yaml"
	if _, err := m.Apply(ctx, second, apply.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	if _, err := m.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rollback(ctx); !errors.Is(err, apply.ErrNothingToRollBack) {
		t.Fatalf("second rollback: %v", err)
	}
	s, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.History) != 1 {
		t.Fatalf("history %+v, want one rollback", s.History)
	}
	ev := s.History[0]
	if ev.Kind != apply.EventRollback || ev.Why != apply.WhyByHand || !ev.At.Equal(clock) ||
		ev.From == nil || ev.From.PolicyFile != "second.yaml" || ev.To == nil || ev.To.PolicyFile != lab {
		t.Errorf("rollback recorded as %+v (from %+v to %+v)", ev, ev.From, ev.To)
	}
	if s.Current == nil || s.Current.PolicyFile != lab || s.Drift {
		t.Errorf("after the rollback: current %+v, drift %v", s.Current, s.Drift)
	}
	clock = clock.Add(time.Hour)
	if _, err := m.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Remove(ctx); err == nil || !strings.Contains(err.Error(), "nothing to remove") {
		t.Errorf("second remove: %v", err)
	}
	if _, err := m.Rollback(ctx); !errors.Is(err, apply.ErrNothingToRollBack) || !strings.Contains(err.Error(), "remove") {
		t.Errorf("rollback after remove: %v", err)
	}
	s, _ = m.Status(ctx)
	if last := s.Last(); s.Current != nil || last == nil || last.Kind != apply.EventRemove || last.From.PolicyFile != lab || !last.At.Equal(clock) {
		t.Errorf("after remove: current %+v, last %+v", s.Current, last)
	}
}

// TestUnconfirmedFirstApplyRollsBackToNothing: while the host's first apply
// waits for confirmation, the rollback (the watchdog's, or by hand) removes
// sipwall and puts the host's policies back; the reason is recorded.
func TestUnconfirmedFirstApplyRollsBackToNothing(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ipset")
	ctx := context.Background()
	ns := nstest.New(t, "unconf")
	m := newManager(t, ns)
	var token string
	wd := func(tok string, _ time.Time) (int, error) { token = tok; return 1, nil }
	if _, err := m.Apply(ctx, generation(t, backend.IPTables, ""), apply.ApplyOptions{Confirm: time.Minute, Watchdog: wd}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nstest.Run(t, ns, "iptables-save"), ":INPUT DROP") {
		t.Fatal("INPUT not DROP after the apply")
	}
	done, err := m.RollbackIfPending(ctx, token)
	if err != nil || !done {
		t.Fatalf("watchdog rollback: %v %v", done, err)
	}
	out := nstest.Run(t, ns, "iptables-save")
	if strings.Contains(out, "sipwall") || strings.Contains(out, ":INPUT DROP") {
		t.Errorf("after the unconfirmed first apply was rolled back:\n%s", out)
	}
	s, _ := m.Status(ctx)
	if last := s.Last(); last == nil || last.Why != apply.WhyUnconfirmed || last.To != nil || last.From == nil {
		t.Errorf("recorded %+v", last)
	}
}

// TestBackendSwitchCarriesLists: an apply that changes backend takes the
// lists with it, timeouts included, and removes the old backend's chains
// or table and its sets.
func TestBackendSwitchCarriesLists(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	ctx := context.Background()
	for _, dir := range [][2]backend.Name{{backend.IPTables, backend.NFTables}, {backend.NFTables, backend.IPTables}} {
		from, to := dir[0], dir[1]
		t.Run(string(from)+"-to-"+string(to), func(t *testing.T) {
			ns := nstest.New(t, "switch")
			othersRules(t, ns)
			before := kernelState(t, ns)
			m := newManager(t, ns)
			g := generation(t, from, "")
			if _, err := m.Apply(ctx, g, apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			be, _ := backend.Open(from, backend.Host{NS: ns})
			entries := []backend.Entry{
				{List: "banned", Prefix: pfx("203.0.113.7/32"), Remaining: 2 * time.Hour, Comment: "manual"},
				{List: "banned", Prefix: pfx("198.18.0.0/24")},
				{List: "scanners", Prefix: pfx("203.0.113.11/32"), Remaining: time.Hour},
				{List: "scanners", Prefix: pfx("2001:db8:5::9/128"), Remaining: 30 * time.Minute},
				{List: "allowed", Prefix: pfx("198.51.100.21/32")},
			}
			if _, _, err := be.Store(g.Sets).Add(ctx, entries); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			ng := generation(t, to, "")
			if _, err := m.Apply(ctx, ng, apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			nb, _ := backend.Open(to, backend.Host{NS: ns})
			got, err := nb.Store(ng.Sets).Read(ctx, "banned", "scanners", "allowed")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range entries {
				var found *backend.Entry
				for i := range got {
					if got[i].List == want.List && got[i].Prefix == want.Prefix {
						found = &got[i]
					}
				}
				switch {
				case found == nil:
					t.Errorf("%s %s lost in the switch", want.List, want.Addr())
				case want.Remaining == 0 && found.Remaining != 0:
					t.Errorf("%s %s: timeout %s, want none", want.List, want.Addr(), found.Remaining)
				case want.Remaining > 0 && (found.Remaining > want.Remaining || found.Remaining < want.Remaining-time.Minute):
					t.Errorf("%s %s: remaining %s, want about %s", want.List, want.Addr(), found.Remaining, want.Remaining)
				}
			}
			// Only the new backend's part is left.
			ipt := nstest.Run(t, ns, "iptables-save") + nstest.Run(t, ns, "ip6tables-save")
			sets := nstest.Run(t, ns, "ipset", "list", "-n")
			tables := nstest.Run(t, ns, "nft", "list", "tables")
			if to == backend.NFTables {
				if strings.Contains(ipt, "sipwall") || strings.Contains(sets, "sipwall") || strings.Contains(ipt, ":INPUT DROP") {
					t.Errorf("iptables part left behind:\n%s\n%s", ipt, sets)
				}
			} else if strings.Contains(tables, "inet sipwall") {
				t.Errorf("nftables table left behind:\n%s", tables)
			}
			if s, err := m.Status(ctx); err != nil || s.Drift || s.Current.Backend != to {
				t.Errorf("status after the switch: %+v %v", s, err)
			}
			// And back to nothing: the host as it was.
			if _, err := m.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			if got := kernelState(t, ns); got != before {
				t.Errorf("after remove the kernel differs from before:\n--- before\n%s\n--- after\n%s", before, got)
			}
		})
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
