package lists

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
)

// Counter is the counters of one rule of the applied ruleset, summed over
// the kernel rules it renders to (both address families, each prefix).
type Counter struct {
	Chain   string `json:"chain"`
	Comment string `json:"comment"`
	// Kind is what the rule is for (the key of its group).
	Kind string `json:"kind"`
	// Rule numbers the rule in the ruleset, from 1 in chain order (0 for
	// an iptables jump from a built-in chain).
	Rule    int    `json:"rule"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Group is the counters of one kind of rule, explained.
type Group struct {
	Key  string `json:"key"`
	What string `json:"what"`
	// Packets and Bytes are what the group's rules decided: the sum of
	// its rules with a verdict, or of all its rules when none has one
	// (knocks, the inspector).
	Packets uint64    `json:"packets"`
	Bytes   uint64    `json:"bytes"`
	Rules   []Counter `json:"rules,omitempty"`
}

// Stats are the ruleset's live counters and the lists' sizes.
type Stats struct {
	Backend backend.Name   `json:"backend"`
	Groups  []Group        `json:"groups"`
	Lists   map[string]int `json:"lists"`
	Rules   []Counter      `json:"rules"`
	// Signatures are the sources in the scanners list now, by the
	// signature that banned them, as guard's inspector records it with the
	// ban (nftables, where the kernel cannot match signatures): busiest
	// first.
	Signatures []Signature `json:"signatures,omitempty"`
	// Note says why the counters are not grouped, when they are not.
	Note string `json:"note,omitempty"`
}

// Signature is how many sources listed as scanners a signature banned.
type Signature struct {
	Signature string `json:"signature"`
	Sources   int    `json:"sources"`
}

// Stats reads the counters of sipwall's rules from the kernel, maps them
// to the applied ruleset's rules by chain and position (s.Rules, recorded
// when it was applied) and groups them by the rules' kind.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	if s.Backend == nil {
		return nil, fmt.Errorf("stats: no backend")
	}
	raw, err := s.Backend.Counters(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	// Each kernel rule where the kernel lists it.
	counts := make([]ir.Count, len(raw))
	for i, r := range raw {
		counts[i] = ir.Count{File: r.File, Table: ir.Table(r.Table), Chain: r.Chain, Position: r.Position, Packets: r.Packets, Bytes: r.Bytes}
	}
	st := &Stats{Backend: s.Name(), Lists: map[string]int{}, Rules: []Counter{}}
	if len(s.Rules) == 0 {
		st.Note = "the applied ruleset does not record its rules (applied by an older sipwall): run sipwall apply to have the counters grouped"
	} else if st.Rules, st.Groups, err = groupCounters(s.Rules, counts); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	entries, err := s.List(ctx, s.lists()...)
	if err != nil {
		return nil, err
	}
	for _, n := range Names {
		st.Lists[n] = 0
	}
	bySig := map[string]int{}
	for _, e := range entries {
		st.Lists[e.List]++
		if sig, ok := compile.SignatureOf(stripStamp(e.Comment)); ok && e.List == compile.SetScanners {
			bySig[sig]++
		}
	}
	for sig, n := range bySig {
		st.Signatures = append(st.Signatures, Signature{Signature: sig, Sources: n})
	}
	sort.Slice(st.Signatures, func(i, j int) bool {
		a, b := st.Signatures[i], st.Signatures[j]
		return a.Sources > b.Sources || (a.Sources == b.Sources && a.Signature < b.Signature)
	})
	return st, nil
}

// groupCounters maps kernel counters to the applied rules (refs) and groups them
// by kind: every group with rules, in the order of ir.Kinds.
func groupCounters(refs []ir.RuleRef, counts []ir.Count) ([]Counter, []Group, error) {
	rules, groups, err := ir.GroupCounts(refs, counts)
	if err != nil {
		return nil, nil, err
	}
	counter := func(r ir.RuleCount) Counter {
		return Counter{Chain: r.Chain, Comment: r.Comment, Kind: r.Kind.String(), Rule: r.Rule, Packets: r.Packets, Bytes: r.Bytes}
	}
	out := make([]Counter, len(rules))
	for i, r := range rules {
		out[i] = counter(r)
	}
	gs := make([]Group, len(groups))
	for i, g := range groups {
		gs[i] = Group{Key: g.Kind.String(), What: g.Kind.About(), Packets: g.Packets, Bytes: g.Bytes}
		for _, r := range g.Rules {
			gs[i].Rules = append(gs[i].Rules, counter(r))
		}
	}
	return out, gs, nil
}

// Summary says the counters in words, one line each, like the article's
// `iptables -nvL -t raw | grep BADSIP` summed and explained.
func (st *Stats) Summary() []string {
	var out []string
	for _, g := range st.Groups {
		if g.Key == ir.KindDispatch.String() {
			continue // jumps between chains: in --json only
		}
		out = append(out, fmt.Sprintf("%s: %d packets, %s", g.What, g.Packets, HumanBytes(g.Bytes)))
		if len(g.Rules) > 1 {
			// The rules that counted something, the busiest first.
			var rs []Counter
			for _, r := range g.Rules {
				if r.Packets > 0 {
					rs = append(rs, r)
				}
			}
			sort.SliceStable(rs, func(i, j int) bool { return rs[i].Packets > rs[j].Packets })
			for _, r := range rs {
				name := r.Comment
				if name == "" {
					name = fmt.Sprintf("%s rule %d", r.Chain, r.Rule)
				}
				out = append(out, fmt.Sprintf("    %-46s %12d packets %10s", name, r.Packets, HumanBytes(r.Bytes)))
			}
		}
	}
	if len(st.Signatures) > 0 {
		out = append(out, "SIP scanners listed now, by the signature that banned them:")
		for _, x := range st.Signatures {
			out = append(out, fmt.Sprintf("    %-46s %12d sources", x.Signature, x.Sources))
		}
	}
	var ls []string
	for _, n := range Names {
		ls = append(ls, fmt.Sprintf("%s %d", n, st.Lists[n]))
	}
	out = append(out, "sources listed now: "+strings.Join(ls, ", "))
	return out
}

// HumanBytes writes a byte count with a binary unit.
func HumanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func stripStamp(c string) string {
	c, _ = backend.SplitStamp(c)
	return c
}
