// Package ir is sipwall's backend-neutral ruleset: tables, chains, rules,
// sets and a closed set of matches and statements. The compiler produces it
// from a policy; the iptables and nftables renderers turn it into text; the
// replay engine evaluates it.
package ir

import (
	"net/netip"
	"time"
)

// Family is a set of address families.
type Family uint8

// Address families.
const (
	IPv4 Family = 1 << iota
	IPv6
	Both = IPv4 | IPv6
)

// Has reports whether f includes g.
func (f Family) Has(g Family) bool { return f&g != 0 }

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	case Both:
		return "ipv4+ipv6"
	}
	return "none"
}

// Table is where a chain lives: raw runs before conntrack, filter after.
type Table string

// Tables used by sipwall.
const (
	Raw    Table = "raw"
	Filter Table = "filter"
)

// Hook is the netfilter hook a base chain is attached to.
type Hook string

// Hooks used by sipwall; "" marks a regular chain reached by jumps.
const (
	Prerouting Hook = "prerouting"
	Input      Hook = "input"
	Forward    Hook = "forward"
	Output     Hook = "output"
)

// Ruleset is a complete compiled policy.
type Ruleset struct {
	// Profile is "sipwall" or "article".
	Profile string
	// Families are the address families the ruleset protects.
	Families Family
	Sets     []*Set
	Chains   []*Chain
	// Notes say what is enforced where, for compile and check to print.
	Notes []string
}

// Chain returns the chain named name in table t, or nil.
func (rs *Ruleset) Chain(t Table, name string) *Chain {
	for _, c := range rs.Chains {
		if c.Table == t && c.Name == name {
			return c
		}
	}
	return nil
}

// Set returns the set named name, or nil.
func (rs *Ruleset) Set(name string) *Set {
	for _, s := range rs.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Set is an address list. It exists once per family in Families; renderers
// name the instances NAME4 and NAME6.
type Set struct {
	Name string
	// List is the list the set holds part of when one list is kept in
	// several sets (banned-net holds the networks of banned); "" when it
	// is Name.
	List     string
	Families Family
	// Dynamic sets are filled from the packet path (knock, scanner, trap).
	Dynamic bool
	// Interval sets hold networks, not only single addresses.
	Interval bool
	// Timeout is the default lifetime of an entry; 0 means permanent.
	Timeout time.Duration
	// Size is the maximum number of entries; a full set refuses new entries
	// and never evicts a live one.
	Size int
	// Static sets hold the policy's Elements and nothing else: an apply
	// replaces their contents instead of carrying them over.
	Static bool
	// Elements are static contents.
	Elements []netip.Prefix
	Comment  string
}

// Chain is a list of rules. A base chain (Hook != "") is entered by the
// kernel; its Policy applies when no rule decides.
type Chain struct {
	Table  Table
	Name   string
	Hook   Hook
	Policy Verdict // for base chains: Accept or Drop
	// Builtin is true when Name is the kernel's own chain (INPUT, PREROUTING);
	// only the article profile writes into builtin chains.
	Builtin bool
	Rules   []*Rule
}

// Rule is matches, then optional statements, then an optional verdict.
type Rule struct {
	// Family restricts the rule to IPv4 or IPv6 packets; Both (or 0) for any.
	Family  Family
	Matches []Match
	Stmts   []Stmt
	Verdict Verdict
	Comment string
	// Kind says what the rule is for (stats groups counters by it).
	Kind Kind
}

// Fam returns the rule's families, Both when unset.
func (r *Rule) Fam() Family {
	if r.Family == 0 {
		return Both
	}
	return r.Family
}

// VerdictKind is what a rule does with a packet when it matches.
type VerdictKind uint8

// Verdict kinds. Continue means the rule has no verdict (statements only).
const (
	Continue VerdictKind = iota
	Accept
	Drop
	RejectTCPReset
	Return
	Jump
)

// Verdict is a verdict kind plus the jump target.
type Verdict struct {
	Kind  VerdictKind
	Chain string // for Jump
}

// Common verdicts.
var (
	VAccept = Verdict{Kind: Accept}
	VDrop   = Verdict{Kind: Drop}
	VReturn = Verdict{Kind: Return}
)

// JumpTo returns a verdict that jumps to chain.
func JumpTo(chain string) Verdict { return Verdict{Kind: Jump, Chain: chain} }

// PerUnit expresses "rate per per" as an integer count per second, minute,
// hour or day, the units iptables and nftables accept. It rounds up when no
// unit gives a whole number (the limit is then slightly looser).
func PerUnit(rate int, per time.Duration) (int, time.Duration) {
	for _, u := range []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour} {
		if (int64(rate)*int64(u))%int64(per) == 0 {
			return int(int64(rate) * int64(u) / int64(per)), u
		}
	}
	day := 24 * time.Hour
	return int((int64(rate)*int64(day) + int64(per) - 1) / int64(per)), day
}
