package lists

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// nftBackend keeps the lists in sets of table inet sipwall. Every change is
// one transaction, all or nothing: one netlink batch (nftnl.go), or one
// `nft -f` script for a Runner that is not an apply.Exec. Reads go through
// `nft -j` and the Runner.
type nftBackend struct{ r apply.Runner }

// chunk is how many elements go on one line of a script.
const chunk = 2000

func (b nftBackend) read(ctx context.Context, lists []string) ([]Entry, error) {
	sets, err := apply.ListNFTSets(ctx, b.r)
	if err != nil {
		return nil, err
	}
	if sets == nil {
		return nil, fmt.Errorf("nftables: table inet %s is not loaded: run sipwall apply", nft.Table)
	}
	byName := map[string]apply.NFTSet{}
	for _, s := range sets {
		byName[s.Name] = s
	}
	var out []Entry
	for _, l := range lists {
		for _, f := range []ir.Family{ir.IPv4, ir.IPv6} {
			// A list that takes networks is read from both of its
			// sets, under the list's name.
			for _, sl := range listSets(l) {
				name := nft.SetName(sl, f)
				s, ok := byName[name]
				if !ok {
					// A policy without IPv6 has no *6 sets.
					if f == ir.IPv6 {
						continue
					}
					return nil, fmt.Errorf("nftables: set %s is not in table inet %s: re-apply the ruleset", name, nft.Table)
				}
				es, err := nftEntries(l, name, s)
				if err != nil {
					return nil, err
				}
				out = append(out, es...)
			}
		}
	}
	return out, nil
}

// listSets are the nftables sets of list (named as in package compile):
// the list's own and, for a list that takes networks, its -net twin.
func listSets(list string) []string {
	if t, ok := netTwin[list]; ok {
		return []string{list, t}
	}
	return []string{list}
}

// nftEntries are the entries of list in set s, as `nft -j` lists them.
func nftEntries(l, name string, s apply.NFTSet) ([]Entry, error) {
	var out []Entry
	for _, e := range s.Elements {
		p, err := parseKernelPrefix(e.Prefix)
		if err != nil {
			return nil, fmt.Errorf("nftables: set %s: %w", name, err)
		}
		en := Entry{List: l, Prefix: p, Comment: e.Comment}
		if e.Timeout > 0 || e.Expires > 0 {
			en.Remaining = time.Duration(max(e.Expires, 1)) * time.Second
		}
		out = append(out, en)
	}
	return out, nil
}

// parseKernelPrefix parses an element as a tool prints it.
func parseKernelPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("unexpected element %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("unexpected element %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// element writes an entry the way nft reads it.
func element(e Entry, withExtras bool) string {
	s := FormatPrefix(e.Prefix)
	if !withExtras {
		return s
	}
	if e.Remaining > 0 {
		s += fmt.Sprintf(" timeout %ds", int64(e.Remaining/time.Second))
	}
	if e.Comment != "" {
		s += " comment " + quoteNFT(e.Comment)
	}
	return s
}

func quoteNFT(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ", `\`, "/").Replace(s) + `"`
}

// bySet groups entries by kernel set name, sets in name order.
func bySet(backend string, entries []Entry) ([]string, map[string][]Entry) {
	m := map[string][]Entry{}
	for _, e := range entries {
		n := entrySet(backend, e)
		m[n] = append(m[n], e)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, m
}

func writeOp(w *strings.Builder, op, set string, es []Entry, extras bool) {
	for i := 0; i < len(es); i += chunk {
		end := min(i+chunk, len(es))
		fmt.Fprintf(w, "%s element inet %s %s { ", op, nft.Table, set)
		for j, e := range es[i:end] {
			if j > 0 {
				w.WriteString(", ")
			}
			w.WriteString(element(e, extras))
		}
		w.WriteString(" }\n")
	}
}

// addScript adds entries, replacing those already present (add, delete,
// add again: nft's add alone keeps an existing element's old timeout).
func addScript(entries []Entry) string {
	var w strings.Builder
	names, m := bySet("nftables", entries)
	for _, n := range names {
		writeOp(&w, "add", n, m[n], false)
		writeOp(&w, "delete", n, m[n], false)
		writeOp(&w, "add", n, m[n], true)
	}
	return w.String()
}

// exactScript is addScript when the lists' contents are known: it deletes
// drop and the entries being replaced, then adds. (The kernel refuses the
// add-delete-add sequence for a network right after deleting an address
// inside it in the same transaction.)
func exactScript(entries, drop []Entry, have map[netip.Prefix]map[string]bool) string {
	var w strings.Builder
	for _, e := range entries {
		if have[e.Prefix][e.List] {
			drop = append(drop, e)
		}
	}
	names, m := bySet("nftables", drop)
	for _, n := range names {
		writeOp(&w, "delete", n, m[n], false)
	}
	names, m = bySet("nftables", entries)
	for _, n := range names {
		writeOp(&w, "add", n, m[n], true)
	}
	return w.String()
}

// trickMax is the largest batch sent with addScript: nft 1.0's cost for
// deleting elements of an interval set grows with the batch times the
// set's size, so larger batches read the lists first and delete only the
// entries they replace (usually none).
const trickMax = 16

// add writes over netlink when the Runner says in which namespace its
// tools run (apply.Exec), and otherwise with `nft -f` through the Runner:
// that fallback, addScript and exactScript are the only writes left to the
// nft tool, for a Runner that is not an apply.Exec.
func (b nftBackend) add(ctx context.Context, entries []Entry) (int, []string, error) {
	if ns, ok := netlinkNS(b.r); ok {
		return nlAdd(ns, entries)
	}
	// An address of a list that takes networks goes to a hash set, which
	// does not refuse it when a network of the twin set holds it: those
	// lists are read first.
	if len(entries) <= trickMax && !anyTwinned(entries) {
		_, err := b.r.Run(ctx, strings.NewReader(addScript(entries)), "nft", "-f", "-")
		if err == nil {
			return len(entries), nil, nil
		}
		if !strings.Contains(err.Error(), "interval overlaps") && !strings.Contains(err.Error(), "conflicting intervals") {
			return 0, nil, nftError(err)
		}
	}
	// Read the lists concerned, then replace exactly.
	lists := map[string]bool{}
	for _, e := range entries {
		lists[e.List] = true
	}
	var names []string
	for l := range lists {
		names = append(names, l)
	}
	have, rerr := b.read(ctx, names)
	if rerr != nil {
		return 0, nil, rerr
	}
	keep, drop, exact, warnings := resolve(entries, have)
	if len(keep) == 0 {
		return 0, warnings, nil
	}
	if _, err := b.r.Run(ctx, strings.NewReader(exactScript(keep, drop, exact)), "nft", "-f", "-"); err != nil {
		return 0, nil, nftError(err)
	}
	return len(keep), warnings, nil
}

// anyTwinned reports whether an entry goes to a list kept in two sets.
func anyTwinned(entries []Entry) bool {
	for _, e := range entries {
		if _, ok := netTwin[e.List]; ok {
			return true
		}
	}
	return false
}

// resolve plans adding entries to lists holding have: it leaves out what a
// wider entry holds already (keep is the rest), drops what a new network
// holds, and says which entries are listed already (exact).
func resolve(entries, have []Entry) (keep, drop []Entry, exact map[netip.Prefix]map[string]bool, warnings []string) {
	var nets []Entry
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
		if w, ok := widerIn(nets, e); ok {
			warnings = append(warnings, fmt.Sprintf("%s is already listed inside %s (list %s)", e.Addr(), w.Addr(), w.List))
			continue
		}
		keep = append(keep, e)
	}
	for _, h := range have {
		for _, e := range keep {
			if e.List == h.List && e.Prefix.Bits() < h.Prefix.Bits() && e.Prefix.Contains(h.Prefix.Addr()) {
				drop = append(drop, h)
				warnings = append(warnings, fmt.Sprintf("%s replaces %s (list %s)", e.Addr(), h.Addr(), h.List))
				break
			}
		}
	}
	return keep, drop, exact, warnings
}

func (b nftBackend) del(ctx context.Context, entries []Entry) error {
	if ns, ok := netlinkNS(b.r); ok {
		return nlDel(ns, entries)
	}
	var w strings.Builder
	names, m := bySet("nftables", entries)
	for _, n := range names {
		writeOp(&w, "delete", n, m[n], false)
	}
	if _, err := b.r.Run(ctx, strings.NewReader(w.String()), "nft", "-f", "-"); err != nil {
		return nftError(err)
	}
	return nil
}

// nftError says what a refusal of nft means; nothing was changed.
func nftError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "No such file or directory"):
		return fmt.Errorf("nftables: a list's set is missing from table inet %s (run sipwall apply); nothing changed: %w", nft.Table, err)
	case strings.Contains(msg, "Could not process rule: Argument list too long"), strings.Contains(msg, "No space left"):
		return fmt.Errorf("nftables: the set is full; nothing changed: %w", err)
	case strings.Contains(msg, "Operation not supported"):
		return fmt.Errorf("nftables: this kernel lacks a feature the lists need (set timeouts or comments); nothing changed: %w", err)
	}
	return fmt.Errorf("nftables refused the change; nothing changed: %w", err)
}
