package ir

import "strings"

// Listing is a rendered ruleset, piece by piece: a backend's files are the
// concatenation of their entries' Text, in order, and every rule entry
// names the IR rule it was rendered from. The replay engine is built from
// a listing and `sipwall stats` maps the kernel's counters back to it, so
// neither reads the rendered text.
type Listing struct {
	Entries []Entry
}

// EntryKind says what an entry of a listing holds.
type EntryKind uint8

// Entry kinds.
const (
	// EntryText is text without a kernel object of its own: headers,
	// table lines, COMMIT, braces, blank lines.
	EntryText EntryKind = iota
	// EntrySet is a set's declaration with its static elements (an ipset
	// create line and its add lines, or an nftables set block).
	EntrySet
	// EntryChain is a chain's declaration: an iptables ":NAME POLICY
	// [0:0]" line, or an nftables "chain NAME {" line with its hook line.
	EntryChain
	// EntryRule is one rule as the kernel lists it.
	EntryRule
)

// Entry is one piece of a rendered file.
type Entry struct {
	Kind EntryKind
	// File is the file the entry belongs to: rules.v4, rules.v6 or ipsets
	// (iptables), sipwall.nft (nftables).
	File string
	// Family is the address family of a set, chain or rule: IPv4 or IPv6,
	// or Both for an nftables chain, or a rule written once for both
	// families.
	Family Family
	// Table is the table of a chain or rule; for nftables, where every
	// chain is in table inet sipwall, the table whose priority the chain
	// takes (raw before filter).
	Table Table
	// Chain is the chain of a rule, or the chain a declaration declares,
	// as rendered (PREROUTING, INPUT... for iptables' built-in chains).
	Chain string
	// Hook and Policy describe a declared base chain; Hook is "" for a
	// chain entered only by jumps.
	Hook   Hook
	Policy Verdict
	// Position is a rule's 1-based position in its chain, as the kernel
	// lists it (iptables-save -c, nft list ruleset).
	Position int
	// Text is the entry's exact text in the file, newlines included.
	Text string
	// Rule is the rule the entry renders: the IR rule itself or, for one
	// line of an iptables rule on several source or destination prefixes,
	// a copy of it on that one prefix. For iptables' jumps from a
	// built-in chain into sipwall's chains it is a rule the renderer made
	// (Kind Dispatch).
	Rule *Rule
	// From is the ruleset's rule the entry was rendered from; nil for a
	// rule the renderer made.
	From *Rule
	// Set is the declared set (EntrySet).
	Set *Set
}

// Line returns a rule's text without its indentation and newline.
func (e *Entry) Line() string { return strings.TrimSpace(e.Text) }

// Text returns the text of file: its entries' text, joined.
func (l *Listing) Text(file string) string {
	var b strings.Builder
	for i := range l.Entries {
		if l.Entries[i].File == file {
			b.WriteString(l.Entries[i].Text)
		}
	}
	return b.String()
}

// Rules returns the rule entries, in order.
func (l *Listing) Rules() []*Entry {
	var out []*Entry
	for i := range l.Entries {
		if l.Entries[i].Kind == EntryRule {
			out = append(out, &l.Entries[i])
		}
	}
	return out
}

// Add appends an entry.
func (l *Listing) Add(e Entry) { l.Entries = append(l.Entries, e) }
