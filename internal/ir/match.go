package ir

import (
	"net/netip"
	"time"
)

// Match is one condition of a rule. The set of matches is closed: every
// renderer and the engine handle each type below.
type Match interface{ isMatch() }

// PortRange is an inclusive port range.
type PortRange struct{ From, To uint16 }

// Protocol numbers used in matches.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// InIface matches the input interface; a trailing "+" is a wildcard.
type InIface struct {
	Name string
	Neg  bool
}

// Proto matches the transport protocol.
type Proto struct{ Proto uint8 }

// Src matches the source address against prefixes of the rule's family.
type Src struct {
	Prefixes []netip.Prefix
	Neg      bool
}

// Dst matches the destination address.
type Dst struct {
	Prefixes []netip.Prefix
	Neg      bool
}

// DPort matches the destination port (of Proto's protocol).
type DPort struct{ Ports []PortRange }

// SPort matches the source port.
type SPort struct{ Ports []PortRange }

// TCP flag bits.
const (
	FIN uint8 = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ALL = FIN | SYN | RST | PSH | ACK | URG
)

// TCPFlags matches packets whose flags under Mask equal Comp.
type TCPFlags struct {
	Mask, Comp uint8
	Neg        bool
}

// Conntrack states.
const (
	CTNew uint8 = 1 << iota
	CTEstablished
	CTRelated
	CTInvalid
)

// CTState matches the conntrack state.
type CTState struct{ States uint8 }

// ICMPType matches an ICMP (IPv4) or ICMPv6 (IPv6) type, by the rule's family.
type ICMPType struct{ Type uint8 }

// Fragment matches IPv4 fragments other than the first.
type Fragment struct{}

// Length matches the packet's length as iptables' length match sees it: the
// IPv4 total length, or the IPv6 payload length plus 40.
type Length struct{ Min, Max uint16 }

// Direction of an address looked up in a set.
type Direction uint8

// Directions.
const (
	SrcAddr Direction = iota
	DstAddr
)

// InSet matches when the packet's address is in the set (of the packet's family).
type InSet struct {
	Set string
	Dir Direction
	Neg bool
}

// String matches a string anywhere between byte offsets From and To of the
// packet, counted from the network header (xt_string; iptables only).
type String struct {
	Pattern    string
	IgnoreCase bool
	From, To   uint16
}

// Payload matches bytes at Offset from the start of the transport payload
// (nftables raw payload; nftables only).
type Payload struct {
	Offset uint16
	Bytes  string
}

// RecentOp is an xt_recent operation.
type RecentOp uint8

// xt_recent operations.
const (
	RecentSet RecentOp = iota
	RecentUpdate
	RecentRCheck
)

// Recent is xt_recent (iptables only; the article profile).
type Recent struct {
	Name     string
	Op       RecentOp
	Seconds  int
	Hitcount int
	RTTL     bool
	Neg      bool
}

// Limit is a global token bucket: Rate per Per, with Burst.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// SourceRateOver matches when the source exceeds a token bucket of its own:
// Rate per Per with Burst (hashlimit-above / nftables per-element limit).
// With Dir DstAddr the bucket is the destination's (the remote address of
// a packet the host sends).
type SourceRateOver struct {
	Name  string
	Rate  int
	Per   time.Duration
	Burst int
	Dir   Direction
	// Size is the most sources tracked.
	Size int
}

func (InIface) isMatch()        {}
func (Proto) isMatch()          {}
func (Src) isMatch()            {}
func (Dst) isMatch()            {}
func (DPort) isMatch()          {}
func (SPort) isMatch()          {}
func (TCPFlags) isMatch()       {}
func (CTState) isMatch()        {}
func (ICMPType) isMatch()       {}
func (Fragment) isMatch()       {}
func (Length) isMatch()         {}
func (InSet) isMatch()          {}
func (String) isMatch()         {}
func (Payload) isMatch()        {}
func (Recent) isMatch()         {}
func (Limit) isMatch()          {}
func (SourceRateOver) isMatch() {}

// Stmt is a non-terminal action of a rule.
type Stmt interface{ isStmt() }

// Log writes the packet to the kernel log.
type Log struct{ Prefix string }

// NFLog hands a copy of the packet to userspace over nflog group Group.
type NFLog struct {
	Group  uint16
	Prefix string
}

// AddToSet adds the packet's address to Set (refreshing its timeout when it
// is already there). Timeout 0 uses the set's default.
type AddToSet struct {
	Set     string
	Dir     Direction
	Timeout time.Duration
}

func (Log) isStmt()      {}
func (NFLog) isStmt()    {}
func (AddToSet) isStmt() {}
