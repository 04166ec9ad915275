// Package packet decodes captured frames in place, without allocating.
//
// Decode fills a caller-owned Packet from one captured frame: the link layer
// (Ethernet with 802.1Q/802.1ad tags, Linux cooked capture SLL and SLL2, raw
// IP, BSD loopback), IPv4 (options, fragments), IPv6 (extension headers,
// fragment header), and TCP, UDP, ICMP or ICMPv6. Addresses are netip.Addr
// values and the transport payload is a subslice of the frame, so the
// Packet is only valid until the frame's buffer is reused.
//
// Decode never panics and never allocates, whatever the input. A frame whose
// headers are cut short or inconsistent yields a *DecodeError that wraps one
// of ErrTruncated, ErrMalformed or ErrUnsupported and names the layer; the
// fields of the layers decoded before the failing one stay filled in. A frame
// that is complete at the headers but whose IP datagram was cut by the
// capture's snap length decodes with Packet.Truncated set.
//
// The design follows gopacket's DecodingLayerParser (decode into memory the
// caller owns, reuse it for every packet) but is written by hand for the
// handful of layers a firewall matches on.
package packet

import "net/netip"

// LinkType is a pcap LINKTYPE_ value (the "network" field of a pcap file
// header, or an interface's link type in pcapng).
type LinkType uint32

// Link types Decode understands.
const (
	LinkNull      LinkType = 0   // BSD loopback, host-byte-order address family
	LinkEthernet  LinkType = 1   // IEEE 802.3 Ethernet
	LinkRawDLT12  LinkType = 12  // raw IP, DLT 12 on most platforms
	LinkRawDLT14  LinkType = 14  // raw IP, DLT 14 (BSD/OS)
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback, network-byte-order address family
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// Supported reports whether Decode understands the link type.
func (t LinkType) Supported() bool {
	switch t {
	case LinkNull, LinkEthernet, LinkRawDLT12, LinkRawDLT14, LinkRaw, LinkLoop,
		LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return true
	}
	return false
}

// String returns the link type's usual name.
func (t LinkType) String() string {
	switch t {
	case LinkNull:
		return "NULL"
	case LinkEthernet:
		return "EN10MB"
	case LinkRawDLT12, LinkRawDLT14, LinkRaw:
		return "RAW"
	case LinkLoop:
		return "LOOP"
	case LinkLinuxSLL:
		return "LINUX_SLL"
	case LinkIPv4:
		return "IPV4"
	case LinkIPv6:
		return "IPV6"
	case LinkLinuxSLL2:
		return "LINUX_SLL2"
	}
	return "unknown"
}

// EtherType values the decoder looks at.
const (
	EtherTypeIPv4  uint16 = 0x0800
	EtherTypeARP   uint16 = 0x0806
	EtherTypeVLAN  uint16 = 0x8100
	EtherTypeIPv6  uint16 = 0x86dd
	EtherTypeQinQ  uint16 = 0x88a8
	EtherTypeQinQ2 uint16 = 0x9100
)

// IP protocol numbers (IPv4 protocol, IPv6 next header).
const (
	ProtoHopOpts  uint8 = 0
	ProtoICMP     uint8 = 1
	ProtoTCP      uint8 = 6
	ProtoUDP      uint8 = 17
	ProtoRouting  uint8 = 43
	ProtoFragment uint8 = 44
	ProtoESP      uint8 = 50
	ProtoAH       uint8 = 51
	ProtoICMPv6   uint8 = 58
	ProtoNoNext   uint8 = 59
	ProtoDstOpts  uint8 = 60
)

// TCP flag bits of Packet.TCPFlags.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// PacketType is the Linux packet type carried by SLL and SLL2 headers
// (PACKET_HOST and friends): the direction the kernel saw the frame in.
type PacketType uint8

// Linux packet types.
const (
	PacketHost      PacketType = 0 // addressed to this host
	PacketBroadcast PacketType = 1
	PacketMulticast PacketType = 2
	PacketOtherHost PacketType = 3
	PacketOutgoing  PacketType = 4 // sent by this host
)

// Layer names one protocol layer of a packet.
type Layer uint8

// Layers, in decoding order.
const (
	LayerLink Layer = iota
	LayerEthernet
	LayerVLAN
	LayerSLL
	LayerSLL2
	LayerLoopback
	LayerIPv4
	LayerIPv6
	LayerIPv6Ext
	LayerTCP
	LayerUDP
	LayerICMP
	LayerICMPv6
	numLayers
)

var layerNames = [numLayers]string{
	"link", "ethernet", "vlan", "sll", "sll2", "loopback",
	"ipv4", "ipv6", "ipv6-ext", "tcp", "udp", "icmp", "icmpv6",
}

// String returns the layer's lower-case name.
func (l Layer) String() string {
	if l < numLayers {
		return layerNames[l]
	}
	return "unknown"
}

// LayerSet is a set of layers, one bit per Layer.
type LayerSet uint16

// Has reports whether l is in the set.
func (s LayerSet) Has(l Layer) bool { return s&(1<<l) != 0 }

func (s *LayerSet) add(l Layer) { *s |= 1 << l }

// Packet is one decoded frame. Decode overwrites every field; the byte
// slices point into the frame passed to Decode.
type Packet struct {
	// Layers holds every layer that was decoded completely.
	Layers LayerSet

	// Link layer.
	LinkType   LinkType
	EtherType  uint16     // EtherType (or SLL protocol) of the network layer
	VLANs      uint8      // number of 802.1Q / 802.1ad tags
	VLAN       uint16     // VLAN ID of the outermost tag
	HasPktType bool       // PktType is set (SLL, SLL2)
	PktType    PacketType // Linux packet type from SLL / SLL2
	IfIndex    uint32     // interface index from SLL2

	// Network layer (IPv4 or IPv6).
	IPVersion uint8 // 4, 6, or 0 when the frame carries no IP
	Src, Dst  netip.Addr
	// L3Len is the IP datagram's length as its header states it: the IPv4
	// total length, or 40 plus the IPv6 payload length. It is the number
	// iptables' "-m length" and nft's "meta length" compare.
	L3Len     int
	TTL       uint8 // IPv4 TTL or IPv6 hop limit
	TOS       uint8 // IPv4 TOS or IPv6 traffic class
	IHL       uint8 // IPv4 header length in bytes (options included)
	IPOptions []byte
	IPID      uint32 // IPv4 identification, or IPv6 fragment identification
	DF        bool   // IPv4 don't-fragment flag
	// Fragmented is set when the datagram is a fragment: an IPv4 packet with
	// MF set or a non-zero offset, or an IPv6 packet with a fragment header
	// with M set or a non-zero offset.
	Fragmented bool
	MF         bool   // more-fragments flag (IPv4 MF, IPv6 M)
	FragOffset uint16 // fragment offset in bytes
	// Protocol is the upper-layer protocol: the IPv4 protocol, or the IPv6
	// next header after the extension headers.
	Protocol uint8
	// Truncated is set when the capture holds fewer bytes than the IP
	// header says the datagram has (a snap length cut). Payload then holds
	// what was captured.
	Truncated bool

	// Network is the IP datagram from its first header byte to its end (as
	// the header states it, cut at what was captured): the bytes iptables'
	// string match counts its --from/--to offsets in.
	Network []byte

	// Transport layer.
	SrcPort, DstPort uint16
	TCPFlags         uint8
	TCPDataOffset    uint8 // TCP header length in bytes
	Seq, Ack         uint32
	Window           uint16
	UDPLength        uint16
	ICMPType         uint8
	ICMPCode         uint8

	// Payload is the transport payload (TCP segment data, UDP datagram
	// data, ICMP body after the 4-byte header), or the IP payload when the
	// transport header is not decoded (non-first fragments, other
	// protocols, ESP, ...). It never runs past the IP datagram's end, so
	// Ethernet padding is excluded.
	Payload []byte
}

// IsFragment reports whether the datagram is an IP fragment.
func (p *Packet) IsFragment() bool { return p.Fragmented }

// IsFirstFragment reports whether the datagram is the first fragment of a
// fragmented datagram (offset zero, more fragments to come). Only the
// first fragment carries the transport header.
func (p *Packet) IsFirstFragment() bool { return p.Fragmented && p.FragOffset == 0 }

// HasPorts reports whether SrcPort and DstPort were decoded (TCP or UDP).
func (p *Packet) HasPorts() bool {
	return p.Layers&(1<<LayerTCP|1<<LayerUDP) != 0
}
