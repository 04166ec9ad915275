// Package nftables is the nftables backend: `table inet sipwall` loaded
// with `nft -f` in one transaction, the lists changed over netlink
// (github.com/google/nftables, one batch per change), the counters read
// from the kernel's listing. The nft tool runs through system.Exec and
// netlink talks in the host's network namespace.
package nftables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/conntrack"
	"github.com/sipwall/sipwall/internal/backend/system"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/nft"
)

func init() {
	backend.Register(backend.NFTables, func(h backend.Host) backend.Backend { return New(h) })
}

// Backend manages `table inet sipwall` and nothing else.
type Backend struct {
	h   backend.Host
	run system.Exec
}

// New returns the nftables backend acting on h.
func New(h backend.Host) *Backend { return &Backend{h: h, run: system.Exec{NS: h.NS}} }

// Name implements backend.Backend.
func (b *Backend) Name() backend.Name { return backend.NFTables }

// MaxTimeout is the longest element timeout sipwall writes.
func (b *Backend) MaxTimeout() time.Duration { return 3650 * 24 * time.Hour }

// Sets names the ruleset's sets as render/nft does: NAME4 and NAME6 in
// table inet sipwall; an interval set holds networks.
func (b *Backend) Sets(rs *ir.Ruleset) []backend.Set { return backend.Instances(rs, nft.SetName) }

// ReadSets returns the shapes of the sets of table inet sipwall, for a
// state file written before the shapes were recorded. The kernel does not
// say which list a set holds: the name does (LIST4, LIST-net4 for the
// networks of a list kept in two sets); rate-limit sets are not lists.
func (b *Backend) ReadSets(ctx context.Context) ([]backend.Set, error) {
	var out []backend.Set
	err := system.Do(b.h.NS, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		if ok, err := tableExists(c); err != nil || !ok {
			return err // no table: no sets
		}
		sets, err := c.GetSets(&nftables.Table{Name: nft.Table, Family: nftables.TableFamilyINet})
		if err != nil {
			return err
		}
		for _, s := range sets {
			if s.Anonymous || strings.HasPrefix(s.Name, "rate-") || len(s.Name) < 2 {
				continue
			}
			f := ir.IPv4
			if strings.HasSuffix(s.Name, "6") {
				f = ir.IPv6
			}
			irName := s.Name[:len(s.Name)-1]
			list := strings.TrimSuffix(irName, "-net")
			out = append(out, backend.Set{
				Name: s.Name, List: list, IRName: irName, Family: f,
				Networks: s.Interval, Dynamic: s.Dynamic, Static: list == "trusted",
				Timeout: s.Timeout,
			})
		}
		return nil
	})
	if err != nil {
		return nil, nlError(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ForgetFlows implements backend.Backend.
func (b *Backend) ForgetFlows(_ context.Context, prefixes []netip.Prefix) (int, error) {
	return conntrack.Delete(b.h.NS, prefixes)
}

// Counters reads the counters of the rules of table inet sipwall, in the
// order of `nft -j list table`.
func (b *Backend) Counters(ctx context.Context) ([]backend.Counter, error) {
	out, err := b.run.Run(ctx, nil, "nft", "-j", "list", "table", "inet", nft.Table)
	if err != nil {
		if backend.IsNotFound(err) {
			return nil, fmt.Errorf("nftables: table inet %s is not loaded: run sipwall apply: %w", nft.Table, backend.ErrNotLoaded)
		}
		return nil, fmt.Errorf("nftables: counters: %w", err)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain   string            `json:"chain"`
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nftables: cannot read nft's JSON: %w", err)
	}
	var cs []backend.Counter
	pos := map[string]int{}
	for _, o := range doc.Nftables {
		r := o.Rule
		if r == nil {
			continue
		}
		pos[r.Chain]++
		var c *backend.Counter
		for _, raw := range r.Expr {
			var e map[string]json.RawMessage
			if json.Unmarshal(raw, &e) != nil {
				continue
			}
			if cj, ok := e["counter"]; ok && c == nil {
				var n struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				}
				if json.Unmarshal(cj, &n) == nil {
					c = &backend.Counter{Family: ir.Both, Table: nft.Table, Chain: r.Chain, Comment: r.Comment,
						File: nft.File, Position: pos[r.Chain], Packets: n.Packets, Bytes: n.Bytes}
				}
			}
			for _, v := range []string{"drop", "accept", "reject", "jump", "goto"} {
				if _, ok := e[v]; ok && c != nil {
					c.Verdict = strings.Replace(v, "goto", "jump", 1)
				}
			}
		}
		if c != nil {
			cs = append(cs, *c)
		}
	}
	return cs, nil
}

// Store returns the set store over sets: every change one netlink batch.
func (b *Backend) Store(sets []backend.Set) backend.SetStore { return &store{ns: b.h.NS, sets: sets} }

// store keeps the lists in sets of table inet sipwall. Every change is one
// netlink transaction, all or nothing; reads go over netlink too.
type store struct {
	ns   string
	sets []backend.Set
}

// route checks that every entry has a set.
func (st *store) route(entries []backend.Entry) error {
	for _, e := range entries {
		if _, err := backend.SetFor(st.sets, e.List, e.Prefix); err != nil {
			return err
		}
	}
	return nil
}

// Read implements backend.SetStore.
func (st *store) Read(ctx context.Context, lists ...string) ([]backend.Entry, error) {
	var out []backend.Entry
	err := st.withNetlink(0, 0, func(n *nlConn) error {
		if ok, err := tableExists(n.c); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("nftables: table inet %s is not loaded: run sipwall apply: %w", nft.Table, backend.ErrNotLoaded)
		}
		for _, l := range lists {
			sets := backend.SetsOf(st.sets, l)
			if len(sets) == 0 {
				return fmt.Errorf("nftables: the applied ruleset has no set for the %s list: %w", l, backend.ErrNoSet)
			}
			for _, s := range sets {
				els, err := n.c.GetSetElements(n.nset(s))
				if err != nil {
					if _, gerr := n.c.GetSetByName(n.table, s.Name); errors.Is(gerr, errNoEnt) {
						return fmt.Errorf("nftables: set %s is not in table inet %s: re-apply the ruleset: %w", s.Name, nft.Table, backend.ErrNotLoaded)
					}
					return fmt.Errorf("set %s: %w", s.Name, err)
				}
				got, _, err := setEntries(l, s.Networks, els)
				if err != nil {
					return fmt.Errorf("nftables: set %s: %w", s.Name, err)
				}
				out = append(out, got...)
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, backend.ErrNoSet) || errors.Is(err, backend.ErrNotLoaded) {
			return nil, err
		}
		return nil, nlError(err)
	}
	return out, nil
}

// tableExists reports whether table inet sipwall exists. (Asking for the
// sets of a missing table fails with an error that does not say why.)
func tableExists(c *nftables.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.Name == nft.Table {
			return true, nil
		}
	}
	return false, nil
}

// Add implements backend.SetStore.
func (st *store) Add(ctx context.Context, entries []backend.Entry) (int, []string, error) {
	if len(entries) == 0 {
		return 0, nil, nil
	}
	if err := st.route(entries); err != nil {
		return 0, nil, err
	}
	return st.add(entries)
}

// Delete implements backend.SetStore. A batch that names an entry not
// listed is refused by the kernel as a whole: then the entries listed are
// looked up and deleted alone.
func (st *store) Delete(ctx context.Context, entries []backend.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := st.route(entries); err != nil {
		return err
	}
	err := st.del(entries)
	if err == nil || !backend.IsNotFound(err) {
		return err
	}
	var present []backend.Entry
	err = st.withNetlink(0, 0, func(n *nlConn) error {
		conn, err := dialLookup()
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, e := range entries {
			set, _ := backend.SetFor(st.sets, e.List, e.Prefix)
			w, _, ok, err := n.holdingIn(conn, set, e.Prefix.Addr())
			if err != nil {
				return err
			}
			if ok && w == e.Prefix {
				present = append(present, e)
			}
		}
		return nil
	})
	if err != nil {
		return nlError(err)
	}
	if len(present) == 0 {
		return nil
	}
	return st.del(present)
}

// Replace implements backend.SetStore: the list's sets are flushed and
// filled in one batch.
func (st *store) Replace(ctx context.Context, list string, entries []backend.Entry) error {
	sets := backend.SetsOf(st.sets, list)
	if len(sets) == 0 {
		return fmt.Errorf("nftables: the applied ruleset has no set for the %s list: %w", list, backend.ErrNoSet)
	}
	for _, e := range entries {
		if e.List != list {
			return fmt.Errorf("nftables: replace %s: entry %s is for list %s", list, e.Addr(), e.List)
		}
	}
	if err := st.route(entries); err != nil {
		return err
	}
	err := st.sendBatch(func(b *nlBatch) {
		for _, s := range sets {
			b.flushes = append(b.flushes, s)
		}
		b.put(false, true, entries)
	})
	if err != nil {
		return nlError(err)
	}
	return nil
}

// bySet groups entries by the set that holds them, sets in name order.
func bySet(sets []backend.Set, entries []backend.Entry) ([]backend.Set, map[string][]backend.Entry) {
	type kind struct {
		list   string
		fam    ir.Family
		single bool
	}
	route := map[kind]*backend.Set{}
	m := map[string][]backend.Entry{}
	var order []backend.Set
	for _, e := range entries {
		k := kind{e.List, backend.FamilyOf(e.Prefix), e.Prefix.IsSingleIP()}
		s, ok := route[k]
		if !ok {
			if found, err := backend.SetFor(sets, e.List, e.Prefix); err == nil {
				s = &found
			}
			route[k] = s // nil: refused by route before
		}
		if s == nil {
			continue
		}
		if m[s.Name] == nil {
			order = append(order, *s)
		}
		m[s.Name] = append(m[s.Name], e)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Name < order[j].Name })
	return order, m
}

// resolve plans adding entries to lists holding have: it leaves out what a
// wider entry holds already (keep is the rest), drops what a new network
// holds, unless keepLonger says to keep it (an address that outlives the
// network, in a set of its own), and says which entries are listed already
// (exact).
func resolve(entries, have []backend.Entry, keepLonger func(h, e backend.Entry) bool) (keep, drop []backend.Entry, exact map[netip.Prefix]map[string]bool, warnings []string) {
	var nets []backend.Entry
	exact = map[netip.Prefix]map[string]bool{}
	for _, h := range have {
		if !h.Prefix.IsSingleIP() {
			nets = append(nets, h)
		}
		if exact[h.Prefix] == nil {
			exact[h.Prefix] = map[string]bool{}
		}
		exact[h.Prefix][h.List] = true
	}
	for _, e := range entries {
		if w, ok := backend.Wider(nets, e); ok {
			warnings = append(warnings, fmt.Sprintf("%s is already listed inside %s (list %s)", e.Addr(), w.Addr(), w.List))
			continue
		}
		keep = append(keep, e)
	}
	for _, h := range have {
		for _, e := range keep {
			if e.List == h.List && e.Prefix.Bits() < h.Prefix.Bits() && e.Prefix.Contains(h.Prefix.Addr()) {
				if keepLonger != nil && keepLonger(h, e) {
					warnings = append(warnings, fmt.Sprintf("%s stays listed for longer than %s (list %s)", h.Addr(), e.Addr(), h.List))
					break
				}
				drop = append(drop, h)
				warnings = append(warnings, fmt.Sprintf("%s replaces %s (list %s)", e.Addr(), h.Addr(), h.List))
				break
			}
		}
	}
	return keep, drop, exact, warnings
}

// compatTables are the tables iptables-nft creates in nftables.
var compatTables = map[string]bool{"filter": true, "raw": true, "nat": true, "mangle": true, "security": true}

// Claim: a native nftables table (not one of iptables-nft's) claims the
// host; without rules anywhere nftables is the default.
func (b *Backend) Claim(ctx context.Context) backend.Claim {
	if _, err := b.run.Run(ctx, nil, "nft", "--version"); err != nil {
		return backend.Claim{Rank: backend.ClaimMissing, Why: "nft is not installed"}
	}
	if out, err := b.run.Run(ctx, nil, "nft", "list", "tables"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line) // "table inet foo"
			if len(f) == 3 && f[0] == "table" && !((f[1] == "ip" || f[1] == "ip6") && compatTables[f[2]]) {
				return backend.Claim{Rank: backend.ClaimNative, Why: fmt.Sprintf("the host uses native nftables (table %s %s)", f[1], f[2])}
			}
		}
	}
	return backend.Claim{Rank: backend.ClaimDefault, Why: "no firewall rules found; nftables is the modern default"}
}
