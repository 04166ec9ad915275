package lists

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/iptables"
	"github.com/sipwall/sipwall/internal/render/nft"
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
	Backend string         `json:"backend"`
	Groups  []Group        `json:"groups"`
	Lists   map[string]int `json:"lists"`
	Rules   []Counter      `json:"rules"`
	// Note says why the counters are not grouped, when they are not.
	Note string `json:"note,omitempty"`
}

// Stats reads the counters of sipwall's rules from the kernel, maps them
// to the applied ruleset's rules by chain and position (s.Rules, recorded
// when it was applied) and groups them by the rules' kind.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	var counts []ir.Count
	var err error
	switch s.Backend {
	case "iptables":
		counts, err = s.iptCounters(ctx)
	case "nftables":
		counts, err = s.nftCounters(ctx)
	default:
		err = fmt.Errorf("lists: unknown backend %q", s.Backend)
	}
	if err != nil {
		return nil, err
	}
	st := &Stats{Backend: s.Backend, Lists: map[string]int{}, Rules: []Counter{}}
	if len(s.Rules) == 0 {
		st.Note = "the applied ruleset does not record its rules (applied by an older sipwall): run sipwall apply to have the counters grouped"
	} else if st.Rules, st.Groups, err = groupCounters(s.Rules, counts); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	entries, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range Names {
		st.Lists[n] = 0
	}
	for _, e := range entries {
		st.Lists[e.List]++
	}
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

var iptCounterLine = regexp.MustCompile(`^\[(\d+):(\d+)\] -A (\S+) `)

// iptCounters reads the counters of sipwall's chains, each rule where
// iptables-save lists it: its file (family), table, chain and position.
func (s *Store) iptCounters(ctx context.Context) ([]ir.Count, error) {
	var out []ir.Count
	for _, tool := range []struct{ cmd, file string }{{"iptables-save", iptables.FileV4}, {"ip6tables-save", iptables.FileV6}} {
		for _, table := range []ir.Table{ir.Raw, ir.Filter} {
			text, err := s.R.Run(ctx, nil, tool.cmd, "-c", "-t", string(table))
			if err != nil {
				return nil, fmt.Errorf("stats: %w", err)
			}
			pos := map[string]int{}
			for _, line := range strings.Split(text, "\n") {
				m := iptCounterLine.FindStringSubmatch(strings.TrimSpace(line))
				if m == nil {
					continue
				}
				pos[m[3]]++
				if !strings.HasPrefix(m[3], "sipwall-") {
					continue
				}
				p, _ := strconv.ParseUint(m[1], 10, 64)
				b, _ := strconv.ParseUint(m[2], 10, 64)
				out = append(out, ir.Count{File: tool.file, Table: table, Chain: m[3], Position: pos[m[3]], Packets: p, Bytes: b})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("stats: no sipwall rules in the kernel: run sipwall apply")
	}
	return out, nil
}

// nftCounters reads the counters of table inet sipwall's rules, each rule
// at its position in its chain (nft lists a chain's rules in order).
func (s *Store) nftCounters(ctx context.Context) ([]ir.Count, error) {
	out, err := s.R.Run(ctx, nil, "nft", "-j", "list", "table", "inet", nft.Table)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, fmt.Errorf("stats: table inet %s is not loaded: run sipwall apply", nft.Table)
		}
		return nil, fmt.Errorf("stats: %w", err)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain string            `json:"chain"`
				Expr  []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("stats: cannot read nft's JSON: %w", err)
	}
	var counts []ir.Count
	pos := map[string]int{}
	for _, o := range doc.Nftables {
		r := o.Rule
		if r == nil {
			continue
		}
		pos[r.Chain]++
		c := ir.Count{File: nft.File, Chain: r.Chain, Position: pos[r.Chain]}
		for _, raw := range r.Expr {
			var e struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				} `json:"counter"`
			}
			if json.Unmarshal(raw, &e) != nil || e.Counter == nil {
				continue
			}
			c.Packets += e.Counter.Packets
			c.Bytes += e.Counter.Bytes
		}
		counts = append(counts, c)
	}
	return counts, nil
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
