// Package engine evaluates a compiled ruleset (package ir) on packets in
// userspace, the way the kernel evaluates the same ruleset once it is
// rendered for iptables or nftables.
//
// Compile turns an *ir.Ruleset into a flat program for one backend, built
// from the listing the backend's renderer makes of it (ir.Listing): one
// program rule per rule entry, in the entry's family, chain and position,
// compiled from the entry's IR rule (the iptables renderer writes a
// multi-prefix source or destination as one rule per prefix and each
// family into its own file; the nftables renderer writes a family-specific
// rule once per family into one inet table). The program's rules are the
// kernel's rules one to one, so the counters the engine keeps can be
// compared with iptables-save -c or nft list ruleset.
//
// An Engine holds the dynamic state: conntrack (TCP, UDP, ICMP and the
// generic protocol, with the kernel's state tables and timeouts), address
// sets with timeouts and capacity (ipset and nftables sets), per-source
// token buckets (xt_hashlimit's credit arithmetic and nft_limit's token
// arithmetic), xt_limit, xt_recent and IP reassembly (nf_defrag_ipv4 and
// nf_defrag_ipv6, which run before the raw table once conntrack is in use:
// fragments are queued and the whole datagram is evaluated once). Time is
// the packets' own timestamps. Process evaluates one packet: reassembly,
// raw PREROUTING, then conntrack, then filter INPUT for packets arriving at
// the host; reassembly, conntrack then filter OUTPUT for packets it sends.
//
// The engine does no I/O and allocates nothing per packet in steady state:
// tables grow with the number of live flows and list entries and are swept
// as entries expire.
package engine

import (
	"net/netip"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
)

// HZ is the kernel tick rate the jiffies-based matches (xt_hashlimit,
// xt_limit, xt_recent) are evaluated with: Debian's kernels use 250.
const HZ = 250

// Rule describes one rendered rule of the program.
type Rule struct {
	// Family is the family the rule applies to: IPv4 or IPv6 for iptables
	// (the file it is in) and for family-specific nftables rules, Both for
	// nftables rules written once for both families.
	Family   ir.Family
	Table    ir.Table
	Chain    string // the chain as rendered (PREROUTING for iptables' hook jumps)
	Position int    // 1-based position in its chain, as listed by the kernel
	Text     string // the rendered rule
	Comment  string
	Verdict  ir.VerdictKind
	// RateLimit is set when the rule drops sources over a per-source rate.
	RateLimit bool
	// AddsTo names the set the rule adds the source to, if any.
	AddsTo string
	// IR is the rule it was compiled from.
	IR *ir.Rule
}

// Counter is a rule's packet and byte counter (bytes of the IP datagram,
// as the kernel counts them).
type Counter struct{ Packets, Bytes uint64 }

// Direction says whether a packet arrives at the host or leaves it.
type Direction uint8

// Directions.
const (
	In Direction = iota
	Out
)

// Verdict is what happened to a packet.
type Verdict uint8

// Verdicts.
const (
	// Accepted: the packet passed every chain.
	Accepted Verdict = iota
	// Dropped: a rule or a chain policy dropped it (or REJECT).
	Dropped
	// Suppressed: an outgoing packet answering traffic the ruleset
	// dropped; the host would never have sent it, so it is not evaluated.
	Suppressed
	// Held: an IP fragment kept for reassembly; the reassembled datagram
	// is evaluated when its last fragment arrives.
	Held
	// Ignored: not IP, or not to or from the host.
	Ignored
	// Discarded: an IP fragment the reassembly dropped before any table
	// saw it (a duplicate, an overlap, inconsistent lengths, the fragment
	// memory over its threshold, a datagram over 65535 bytes).
	Discarded
)

func (v Verdict) String() string {
	return [...]string{"accepted", "dropped", "suppressed", "held", "ignored", "discarded"}[v]
}

// CT states as Result.CTState reports them (ir.CTNew and friends), plus
// CTUntracked for packets conntrack does not track (ICMPv6 neighbour
// discovery).
const CTUntracked uint8 = 1 << 7

// SetAdd is an address entering a set.
type SetAdd struct {
	Set  string // the IR set name (admitted, scanners, trapped, ...)
	Addr netip.Addr
	New  bool // the address was not in the set before
}

// maxAdds bounds the set additions one packet reports.
const maxAdds = 4

// Result is what Process did with one packet. It is overwritten by the
// next call.
type Result struct {
	Verdict Verdict
	// Rule is the index (in Program.Rules) of the rule that decided a
	// drop, or -1 when a chain policy did (PolicyChain says which).
	Rule        int
	PolicyChain string
	CTState     uint8
	// NFLog is set when the packet was handed to an nflog group.
	NFLog      bool
	NFLogGroup uint16
	Adds       [maxAdds]SetAdd
	NAdds      int
	// UsedStrings is set when a string match was evaluated.
	UsedStrings bool
	// Bytes is the IP datagram's length (of the reassembled datagram for
	// fragments).
	Bytes int
	// Pkt is the packet evaluated: the input, or the reassembled datagram
	// when the input completed one (valid until the next call).
	Pkt *packet.Packet
}

// Options tune an Engine.
type Options struct {
	// Iface is the interface incoming packets arrive on (default eth0).
	Iface string
	// ConntrackMax bounds the conntrack table (default 262144, the kernel's
	// nf_conntrack_max on a machine with a few GB of memory).
	ConntrackMax int
	// Outgoing evaluates packets the host sends (conntrack learns the
	// replies). When false they are ignored.
	Outgoing bool
}

// Input is one packet for Process.
type Input struct {
	Pkt  *packet.Packet
	Time time.Time
	Dir  Direction
	// Strings, when StringsSet, holds Program.StringMatches(Pkt),
	// computed ahead (by another goroutine, say). It is used unless the
	// packet completes a reassembled datagram.
	Strings    uint64
	StringsSet bool
}
