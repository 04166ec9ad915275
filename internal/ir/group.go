package ir

import "fmt"

// RuleRef is what the counters of an applied rule need of its listing
// entry: where the kernel lists the rule, the ruleset's rule it renders
// and what that rule is for. A generation records them when it is applied.
type RuleRef struct {
	File     string `json:"file"`
	Table    Table  `json:"table"`
	Chain    string `json:"chain"`
	Position int    `json:"position"`
	// Rule numbers the ruleset's rule the entry renders, from 1 in chain
	// order; 0 for a rule the renderer made (an iptables hook jump).
	Rule    int    `json:"rule"`
	Kind    Kind   `json:"kind"`
	Decides bool   `json:"decides,omitempty"` // the rule has a verdict
	Comment string `json:"comment,omitempty"`
}

// Refs returns the references of l's rule entries, for the ruleset rs
// that l renders.
func (l *Listing) Refs(rs *Ruleset) []RuleRef {
	num := map[*Rule]int{}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			num[r] = len(num) + 1
		}
	}
	var out []RuleRef
	for _, e := range l.Rules() {
		out = append(out, RuleRef{File: e.File, Table: e.Table, Chain: e.Chain, Position: e.Position, Rule: num[e.From],
			Kind: e.Rule.Kind, Decides: e.Rule.Verdict.Kind != Continue, Comment: e.Rule.Comment})
	}
	return out
}

// Count is a kernel rule's counter, where the kernel lists the rule: in
// File (the family's iptables file, or sipwall.nft), Table, Chain, at
// Position (from 1, in the order iptables-save or nft list the chain). A
// Table the listing does not name (nftables' "sipwall"; "") matches on
// file, chain and position alone: nftables' chain names are unique in
// its one table.
type Count struct {
	File     string
	Table    Table
	Chain    string
	Position int
	Packets  uint64
	Bytes    uint64
}

// RuleCount is the counters of one rule of the ruleset, summed over the
// kernel rules it renders to (both families, each prefix).
type RuleCount struct {
	Rule    int
	Chain   string
	Comment string
	Kind    Kind
	Decides bool
	Packets uint64
	Bytes   uint64
}

// Group is the counters of the rules of one kind.
type Group struct {
	Kind Kind
	// Packets and Bytes are what the group's rules decided: the sum of
	// its rules with a verdict. A rule without one (adding the source to
	// a list, logging, a copy to the inspector) counts packets that a
	// rule after it decides, so it is summed only in a group where no
	// rule has a verdict.
	Packets uint64
	Bytes   uint64
	Rules   []RuleCount // every rule of the kind, in listing order
}

// GroupCounts maps the kernel's counters back to the rules they count,
// through refs (the applied listing's rule entries), sums them per rule of
// the ruleset (in listing order) and groups the rules by kind, in the order of Kinds. A
// counter of a rule the listing does not have means the kernel holds
// another ruleset than the one applied: that is an error.
func GroupCounts(refs []RuleRef, counts []Count) ([]RuleCount, []Group, error) {
	type key struct {
		file  string
		table Table
		chain string
		pos   int
	}
	at := map[key]int{}
	for i, r := range refs {
		at[key{r.File, r.Table, r.Chain, r.Position}] = i
		if _, ok := at[key{r.File, "", r.Chain, r.Position}]; !ok {
			at[key{r.File, "", r.Chain, r.Position}] = i
		}
	}
	byRule := map[int]*RuleCount{} // by RuleRef.Rule, or -(index+1) for the renderer's rules
	var order []int
	rc := func(i int) *RuleCount {
		r := refs[i]
		id := r.Rule
		if id == 0 {
			id = -(i + 1)
		}
		c := byRule[id]
		if c == nil {
			c = &RuleCount{Rule: r.Rule, Chain: r.Chain, Comment: r.Comment, Kind: r.Kind, Decides: r.Decides}
			byRule[id] = c
			order = append(order, id)
		}
		return c
	}
	for i := range refs {
		rc(i)
	}
	for _, c := range counts {
		i, ok := at[key{c.File, c.Table, c.Chain, c.Position}]
		if !ok {
			i, ok = at[key{c.File, "", c.Chain, c.Position}]
		}
		if !ok {
			return nil, nil, fmt.Errorf("the kernel's rule %d of chain %s (%s) is not in the applied ruleset: the kernel holds another ruleset (see sipwall status)", c.Position, c.Chain, c.File)
		}
		x := rc(i)
		x.Packets += c.Packets
		x.Bytes += c.Bytes
	}
	rules := make([]RuleCount, 0, len(order))
	for _, id := range order {
		rules = append(rules, *byRule[id])
	}
	var groups []Group
	for _, k := range Kinds() {
		g := Group{Kind: k}
		decides := false
		for _, r := range rules {
			if r.Kind == k {
				g.Rules = append(g.Rules, r)
				decides = decides || r.Decides
			}
		}
		if len(g.Rules) == 0 {
			continue
		}
		for _, r := range g.Rules {
			if r.Decides || !decides {
				g.Packets += r.Packets
				g.Bytes += r.Bytes
			}
		}
		groups = append(groups, g)
	}
	return rules, groups, nil
}
