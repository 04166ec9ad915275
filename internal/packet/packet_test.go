package packet

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// corpusDir is the shared capture corpus, beside the repository root.
const corpusDir = "../../../shared/corpus/pcap"

var (
	macA = []byte{0x02, 0, 0, 0, 0, 1}
	macB = []byte{0x02, 0, 0, 0, 0, 2}
	src4 = netip.MustParseAddr("203.0.113.11")
	dst4 = netip.MustParseAddr("192.0.2.10")
	src6 = netip.MustParseAddr("2001:db8::11")
	dst6 = netip.MustParseAddr("2001:db8::10")
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func ether(et uint16, payload []byte) []byte {
	return cat(macB, macA, u16(et), payload)
}

func vlan(id, et uint16) []byte { return cat(u16(id), u16(et)) }

type v4opts struct {
	ttl       uint8
	flagsFrag uint16 // flags<<13 | offset/8
	options   []byte
	totalLen  int // 0: computed, -1: zero as under segmentation offload
}

func ipv4(proto uint8, o v4opts, payload []byte) []byte {
	ihl := 20 + len(o.options)
	total := ihl + len(payload)
	switch {
	case o.totalLen < 0:
		total = 0
	case o.totalLen > 0:
		total = o.totalLen
	}
	h := make([]byte, 20)
	h[0] = 0x40 | byte(ihl/4)
	h[1] = 0x10
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], o.flagsFrag)
	h[8] = o.ttl
	h[9] = proto
	a, b := src4.As4(), dst4.As4()
	copy(h[12:], a[:])
	copy(h[16:], b[:])
	return cat(h, o.options, payload)
}

func ipv6(next uint8, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 63
	a, b := src6.As16(), dst6.As16()
	copy(h[8:], a[:])
	copy(h[24:], b[:])
	return cat(h, payload)
}

func tcp(sport, dport uint16, flags uint8, opts []byte, payload []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], 1000)
	binary.BigEndian.PutUint32(h[8:], 2000)
	h[12] = byte((20+len(opts))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 512)
	return cat(h, opts, payload)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return cat(h, payload)
}

var sipOptions = []byte("OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n")

func sll(pktType uint16, et uint16, payload []byte) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], pktType)
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6)
	copy(h[6:], macA)
	binary.BigEndian.PutUint16(h[14:], et)
	return cat(h, payload)
}

func sll2(pktType uint8, ifindex uint32, et uint16, payload []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], et)
	binary.BigEndian.PutUint32(h[4:], ifindex)
	binary.BigEndian.PutUint16(h[8:], 1)
	h[10] = pktType
	h[11] = 6
	copy(h[12:], macA)
	return cat(h, payload)
}

// ext6 is an IPv6 extension header of the hop-by-hop / routing / dest
// options shape, padded to len8 units of 8 bytes.
func ext6(next uint8, units int) []byte {
	h := make([]byte, units*8)
	h[0] = next
	h[1] = byte(units - 1)
	return h
}

func frag6(next uint8, offset uint16, more bool, id uint32) []byte {
	h := make([]byte, 8)
	h[0] = next
	v := offset &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(h[2:], v)
	binary.BigEndian.PutUint32(h[4:], id)
	return h
}

func TestDecode(t *testing.T) {
	udpSIP := udp(5062, 5060, sipOptions)
	tests := []struct {
		name  string
		link  LinkType
		frame []byte
		check func(t *testing.T, p *Packet)
	}{
		{"ethernet ipv4 udp sip", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64, flagsFrag: 0x4000}, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "IPVersion", p.IPVersion, uint8(4))
			want(t, "Src", p.Src, src4)
			want(t, "Dst", p.Dst, dst4)
			want(t, "TTL", p.TTL, uint8(64))
			want(t, "DF", p.DF, true)
			want(t, "Fragmented", p.IsFragment(), false)
			want(t, "L3Len", p.L3Len, 20+8+len(sipOptions))
			want(t, "Protocol", p.Protocol, ProtoUDP)
			want(t, "ports", [2]uint16{p.SrcPort, p.DstPort}, [2]uint16{5062, 5060})
			want(t, "UDPLength", p.UDPLength, uint16(8+len(sipOptions)))
			want(t, "Payload", string(p.Payload), string(sipOptions))
			want(t, "layers", p.Layers.Has(LayerEthernet) && p.Layers.Has(LayerIPv4) && p.Layers.Has(LayerUDP), true)
		}},
		{"ethernet padding is not payload", LinkEthernet, cat(ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{ttl: 64}, tcp(1598, 2222, TCPSyn, nil, nil))), make([]byte, 6)), func(t *testing.T, p *Packet) {
			want(t, "L3Len", p.L3Len, 40)
			want(t, "Payload len", len(p.Payload), 0)
			want(t, "flags", p.TCPFlags, TCPSyn)
			want(t, "Truncated", p.Truncated, false)
		}},
		{"ipv4 options and tcp options", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{ttl: 5, options: []byte{0x94, 4, 0, 0}}, tcp(43447, 5060, TCPPsh|TCPAck, []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, []byte("REGISTER sip:x SIP/2.0\r\n")))), func(t *testing.T, p *Packet) {
			want(t, "IHL", p.IHL, uint8(24))
			want(t, "IPOptions", string(p.IPOptions), string([]byte{0x94, 4, 0, 0}))
			want(t, "TCPDataOffset", p.TCPDataOffset, uint8(32))
			want(t, "flags", p.TCPFlags, TCPPsh|TCPAck)
			want(t, "Seq/Ack", [2]uint32{p.Seq, p.Ack}, [2]uint32{1000, 2000})
			want(t, "Window", p.Window, uint16(512))
			want(t, "Payload", string(p.Payload), "REGISTER sip:x SIP/2.0\r\n")
		}},
		{"vlan tagged", LinkEthernet, ether(EtherTypeVLAN, cat(vlan(0x2064, EtherTypeIPv4), ipv4(ProtoUDP, v4opts{ttl: 1}, udpSIP))), func(t *testing.T, p *Packet) {
			want(t, "VLANs", p.VLANs, uint8(1))
			want(t, "VLAN", p.VLAN, uint16(0x064))
			want(t, "EtherType", p.EtherType, EtherTypeIPv4)
			want(t, "DstPort", p.DstPort, uint16(5060))
		}},
		{"qinq", LinkEthernet, ether(EtherTypeQinQ, cat(vlan(7, EtherTypeVLAN), vlan(100, EtherTypeIPv6), ipv6(ProtoUDP, udpSIP))), func(t *testing.T, p *Packet) {
			want(t, "VLANs", p.VLANs, uint8(2))
			want(t, "VLAN", p.VLAN, uint16(7))
			want(t, "Src", p.Src, src6)
			want(t, "Payload", string(p.Payload), string(sipOptions))
		}},
		{"arp is not an error", LinkEthernet, ether(EtherTypeARP, make([]byte, 28)), func(t *testing.T, p *Packet) {
			want(t, "EtherType", p.EtherType, EtherTypeARP)
			want(t, "IPVersion", p.IPVersion, uint8(0))
			want(t, "HasPorts", p.HasPorts(), false)
		}},
		{"sll outgoing", LinkLinuxSLL, sll(uint16(PacketOutgoing), EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64}, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "HasPktType", p.HasPktType, true)
			want(t, "PktType", p.PktType, PacketOutgoing)
			want(t, "Src", p.Src, src4)
			want(t, "Payload", string(p.Payload), string(sipOptions))
		}},
		{"sll2 incoming ipv6", LinkLinuxSLL2, sll2(uint8(PacketHost), 3, EtherTypeIPv6, ipv6(ProtoUDP, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "PktType", p.PktType, PacketHost)
			want(t, "IfIndex", p.IfIndex, uint32(3))
			want(t, "IPVersion", p.IPVersion, uint8(6))
			want(t, "L3Len", p.L3Len, 40+8+len(sipOptions))
			want(t, "TTL", p.TTL, uint8(63))
			want(t, "Payload", string(p.Payload), string(sipOptions))
		}},
		{"raw ipv4", LinkRaw, ipv4(ProtoICMP, v4opts{ttl: 64}, []byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0}), func(t *testing.T, p *Packet) {
			want(t, "ICMP type/code", [2]uint8{p.ICMPType, p.ICMPCode}, [2]uint8{8, 0})
			want(t, "Layers ICMP", p.Layers.Has(LayerICMP), true)
			want(t, "Payload len", len(p.Payload), 4)
		}},
		{"raw dlt12 ipv6 icmpv6", LinkRawDLT12, ipv6(ProtoICMPv6, []byte{135, 0, 0, 0, 0, 0, 0, 0}), func(t *testing.T, p *Packet) {
			want(t, "ICMP type", p.ICMPType, uint8(135))
			want(t, "Layers ICMPv6", p.Layers.Has(LayerICMPv6), true)
		}},
		{"raw dlt14", LinkRawDLT14, ipv4(ProtoUDP, v4opts{}, udpSIP), func(t *testing.T, p *Packet) {
			want(t, "DstPort", p.DstPort, uint16(5060))
		}},
		{"linktype ipv4", LinkIPv4, ipv4(ProtoUDP, v4opts{}, udpSIP), func(t *testing.T, p *Packet) {
			want(t, "DstPort", p.DstPort, uint16(5060))
		}},
		{"null loopback little endian ipv6", LinkNull, cat([]byte{30, 0, 0, 0}, ipv6(ProtoUDP, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "IPVersion", p.IPVersion, uint8(6))
			want(t, "DstPort", p.DstPort, uint16(5060))
		}},
		{"null loopback big endian ipv4", LinkNull, cat([]byte{0, 0, 0, 2}, ipv4(ProtoUDP, v4opts{}, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "IPVersion", p.IPVersion, uint8(4))
		}},
		{"loop", LinkLoop, cat([]byte{0, 0, 0, 24}, ipv6(ProtoUDP, udpSIP)), func(t *testing.T, p *Packet) {
			want(t, "IPVersion", p.IPVersion, uint8(6))
		}},
		{"ipv4 first fragment", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64, flagsFrag: 0x2000, totalLen: 20 + 8 + 16}, udp(5062, 5060, sipOptions)[:8+16])), func(t *testing.T, p *Packet) {
			want(t, "IsFragment", p.IsFragment(), true)
			want(t, "IsFirstFragment", p.IsFirstFragment(), true)
			want(t, "MF", p.MF, true)
			want(t, "ports", p.HasPorts(), true)
			want(t, "Payload", string(p.Payload), string(sipOptions[:16]))
		}},
		{"ipv4 later fragment", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64, flagsFrag: 3}, []byte("rest of it"))), func(t *testing.T, p *Packet) {
			want(t, "IsFragment", p.IsFragment(), true)
			want(t, "IsFirstFragment", p.IsFirstFragment(), false)
			want(t, "FragOffset", p.FragOffset, uint16(24))
			want(t, "HasPorts", p.HasPorts(), false)
			want(t, "Payload", string(p.Payload), "rest of it")
		}},
		{"ipv4 tiny first fragment", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{flagsFrag: 0x2000}, make([]byte, 8))), func(t *testing.T, p *Packet) {
			want(t, "IsFirstFragment", p.IsFirstFragment(), true)
			want(t, "HasPorts", p.HasPorts(), false)
			want(t, "Payload len", len(p.Payload), 8)
		}},
		{"ipv6 extension headers", LinkRaw, ipv6(ProtoHopOpts, cat(ext6(ProtoRouting, 1), ext6(ProtoDstOpts, 2), ext6(ProtoTCP, 1), tcp(5061, 5060, TCPSyn, nil, nil))), func(t *testing.T, p *Packet) {
			want(t, "Protocol", p.Protocol, ProtoTCP)
			want(t, "Layers ext", p.Layers.Has(LayerIPv6Ext), true)
			want(t, "flags", p.TCPFlags, TCPSyn)
			want(t, "DstPort", p.DstPort, uint16(5060))
			want(t, "L3Len", p.L3Len, 40+8+16+8+20)
		}},
		{"ipv6 first fragment", LinkRaw, ipv6(ProtoFragment, cat(frag6(ProtoUDP, 0, true, 77), udpSIP[:32])), func(t *testing.T, p *Packet) {
			want(t, "IsFirstFragment", p.IsFirstFragment(), true)
			want(t, "IPID", p.IPID, uint32(77))
			want(t, "Protocol", p.Protocol, ProtoUDP)
			want(t, "DstPort", p.DstPort, uint16(5060))
			want(t, "Payload", string(p.Payload), string(sipOptions[:24]))
		}},
		{"ipv6 later fragment", LinkRaw, ipv6(ProtoDstOpts, cat(ext6(ProtoFragment, 1), frag6(ProtoUDP, 1448, false, 77), []byte("tail"))), func(t *testing.T, p *Packet) {
			want(t, "IsFragment", p.IsFragment(), true)
			want(t, "IsFirstFragment", p.IsFirstFragment(), false)
			want(t, "FragOffset", p.FragOffset, uint16(1448))
			want(t, "MF", p.MF, false)
			want(t, "HasPorts", p.HasPorts(), false)
			want(t, "Payload", string(p.Payload), "tail")
		}},
		{"snaplen cut payload", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{}, udpSIP))[:14+20+8+10], func(t *testing.T, p *Packet) {
			want(t, "Truncated", p.Truncated, true)
			want(t, "L3Len", p.L3Len, 20+8+len(sipOptions))
			want(t, "Payload", string(p.Payload), string(sipOptions[:10]))
		}},
		{"tso total length zero", LinkEthernet, ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{totalLen: -1}, tcp(5060, 43447, TCPAck, nil, []byte("SIP/2.0 200 OK\r\n")))), func(t *testing.T, p *Packet) {
			want(t, "Payload", string(p.Payload), "SIP/2.0 200 OK\r\n")
			want(t, "L3Len", p.L3Len, 20+20+16)
		}},
		{"other protocol", LinkRaw, ipv4(47, v4opts{}, []byte("gre!")), func(t *testing.T, p *Packet) {
			want(t, "Protocol", p.Protocol, uint8(47))
			want(t, "Payload", string(p.Payload), "gre!")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := Decode(tc.link, tc.frame, &p); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if p.LinkType != tc.link {
				t.Errorf("LinkType = %v, want %v", p.LinkType, tc.link)
			}
			tc.check(t, &p)
		})
	}
}

func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{}, tcp(1, 2, TCPSyn, nil, nil)))
	badVer := ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{}, tcp(1, 2, TCPSyn, nil, nil)))
	badVer[14] = 0x55
	badIHL := ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{}, tcp(1, 2, TCPSyn, nil, nil)))
	badIHL[14] = 0x44
	badTotal := ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{totalLen: 12}, tcp(1, 2, TCPSyn, nil, nil)))
	badOff := ether(EtherTypeIPv4, ipv4(ProtoTCP, v4opts{}, tcp(1, 2, TCPSyn, nil, nil)))
	badOff[14+20+12] = 0x40
	badUDP := ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{}, udp(1, 2, nil)))
	badUDP[14+20+5] = 3
	tests := []struct {
		name  string
		link  LinkType
		frame []byte
		layer Layer
		kind  error
		has   Layer // a layer that must still be decoded
	}{
		{"unknown link", 147, good, LayerLink, ErrUnsupported, LayerLink},
		{"empty ethernet", LinkEthernet, nil, LayerEthernet, ErrTruncated, LayerLink},
		{"short ethernet", LinkEthernet, good[:13], LayerEthernet, ErrTruncated, LayerLink},
		{"short vlan", LinkEthernet, ether(EtherTypeVLAN, []byte{0, 1}), LayerVLAN, ErrTruncated, LayerEthernet},
		{"deep vlan", LinkEthernet, ether(EtherTypeVLAN, cat(vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100), vlan(1, 0x8100))), LayerVLAN, ErrMalformed, LayerVLAN},
		{"short ipv4", LinkEthernet, good[:14+19], LayerIPv4, ErrTruncated, LayerEthernet},
		{"ipv4 bad version", LinkEthernet, badVer, LayerIPv4, ErrMalformed, LayerEthernet},
		{"ipv4 ihl below 20", LinkEthernet, badIHL, LayerIPv4, ErrMalformed, LayerEthernet},
		{"ipv4 total below ihl", LinkEthernet, badTotal, LayerIPv4, ErrMalformed, LayerEthernet},
		{"ipv4 options cut", LinkRaw, ipv4(ProtoTCP, v4opts{options: make([]byte, 8)}, nil)[:24], LayerIPv4, ErrTruncated, LayerLink},
		{"short tcp", LinkEthernet, good[:14+20+19], LayerTCP, ErrTruncated, LayerIPv4},
		{"tcp data offset below 20", LinkEthernet, badOff, LayerTCP, ErrMalformed, LayerIPv4},
		{"tcp options cut", LinkRaw, ipv4(ProtoTCP, v4opts{}, tcp(1, 2, 0, make([]byte, 20), nil))[:20+30], LayerTCP, ErrTruncated, LayerIPv4},
		{"short udp", LinkRaw, ipv4(ProtoUDP, v4opts{}, []byte{1, 2, 3}), LayerUDP, ErrTruncated, LayerIPv4},
		{"udp length below 8", LinkEthernet, badUDP, LayerUDP, ErrMalformed, LayerIPv4},
		{"short icmp", LinkRaw, ipv4(ProtoICMP, v4opts{}, []byte{8}), LayerICMP, ErrTruncated, LayerIPv4},
		{"short icmpv6", LinkRaw, ipv6(ProtoICMPv6, []byte{8}), LayerICMPv6, ErrTruncated, LayerIPv6},
		{"short ipv6", LinkRaw, ipv6(ProtoUDP, nil)[:39], LayerIPv6, ErrTruncated, LayerLink},
		{"ipv6 ext cut", LinkRaw, ipv6(ProtoHopOpts, ext6(ProtoUDP, 2)[:9]), LayerIPv6Ext, ErrTruncated, LayerIPv6},
		{"ipv6 frag header cut", LinkRaw, ipv6(ProtoFragment, []byte{17, 0, 0}), LayerIPv6Ext, ErrTruncated, LayerIPv6},
		{"ipv6 bad version in sll", LinkLinuxSLL, sll(0, EtherTypeIPv6, ipv4(ProtoUDP, v4opts{}, udp(1, 2, nil))[:40]), LayerIPv6, ErrMalformed, LayerSLL},
		{"short sll", LinkLinuxSLL, make([]byte, 15), LayerSLL, ErrTruncated, LayerLink},
		{"short sll2", LinkLinuxSLL2, make([]byte, 19), LayerSLL2, ErrTruncated, LayerLink},
		{"empty raw", LinkRaw, nil, LayerLink, ErrTruncated, LayerLink},
		{"raw version 5", LinkRaw, []byte{0x50, 0, 0, 0}, LayerLink, ErrMalformed, LayerLink},
		{"short loopback", LinkNull, []byte{2, 0}, LayerLoopback, ErrTruncated, LayerLink},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			err := Decode(tc.link, tc.frame, &p)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want a *DecodeError", err)
			}
			if de.Layer != tc.layer || !errors.Is(err, tc.kind) {
				t.Errorf("Decode = %v (layer %v), want layer %v kind %v", err, de.Layer, tc.layer, tc.kind)
			}
			if tc.has != LayerLink && !p.Layers.Has(tc.has) {
				t.Errorf("layer %v not kept after error; Layers = %b", tc.has, p.Layers)
			}
			if de.Error() == "" {
				t.Error("empty error text")
			}
		})
	}
}

type corpusTotals struct {
	packets, ip, tcp, udp, arp, tcpPayload, udpPayload, ipLen, syn int
}

// Expected totals, as tshark counts them (ip, tcp, udp, arp; the sums of
// ip.len, tcp.len and udp.length-8; packets with SYN set).
var corpusWant = map[string]corpusTotals{
	"legit-tcp.pcap":         {19, 15, 15, 0, 4, 2902, 0, 3698, 2},
	"legit-udp.pcap":         {11, 7, 0, 7, 4, 0, 2902, 3098, 0},
	"nmap-sip.pcap":          {114, 108, 0, 108, 6, 0, 51419, 54443, 0},
	"portscan-then-sip.pcap": {30, 26, 24, 2, 4, 0, 690, 1754, 12},
	"register-flood.pcap":    {1404, 1400, 0, 1400, 4, 0, 586532, 625732, 0},
	"sipsak-options.pcap":    {2, 2, 0, 2, 0, 0, 690, 746, 0},
	"svcrack.pcap":           {1210, 1206, 0, 1206, 4, 0, 487044, 520812, 0},
	"svmap.pcap":             {2, 2, 0, 2, 0, 0, 794, 850, 0},
	"svwar.pcap":             {408, 404, 0, 404, 4, 0, 144823, 156135, 0},
	"synflood-ssh.pcap":      {602, 600, 600, 0, 2, 0, 0, 24000, 300},
}

type frame struct {
	link LinkType
	data []byte
}

func readCorpus(t testing.TB, name string) []frame {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []frame
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", name, len(out)+1, err)
		}
		out = append(out, frame{LinkType(r.LinkType()), data})
	}
}

func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	if len(files) != len(corpusWant) {
		t.Fatalf("found %d captures in %s, want %d", len(files), corpusDir, len(corpusWant))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			var got corpusTotals
			var p Packet
			for i, fr := range readCorpus(t, name) {
				if err := Decode(fr.link, fr.data, &p); err != nil {
					t.Fatalf("packet %d: %v", i+1, err)
				}
				got.packets++
				if p.IPVersion != 0 {
					got.ip++
					got.ipLen += p.L3Len
				}
				if p.EtherType == EtherTypeARP {
					got.arp++
				}
				if p.Layers.Has(LayerTCP) {
					got.tcp++
					got.tcpPayload += len(p.Payload)
					if p.TCPFlags&TCPSyn != 0 {
						got.syn++
					}
				}
				if p.Layers.Has(LayerUDP) {
					got.udp++
					got.udpPayload += len(p.Payload)
				}
				if p.Truncated {
					t.Errorf("packet %d: Truncated set", i+1)
				}
			}
			if w := corpusWant[name]; got != w {
				t.Errorf("totals\n got %+v\nwant %+v", got, w)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := readCorpus(t, "legit-tcp.pcap")
	frames = append(frames, readCorpus(t, "svmap.pcap")...)
	frames = append(frames,
		frame{LinkRaw, ipv6(ProtoHopOpts, cat(ext6(ProtoFragment, 1), frag6(ProtoUDP, 0, true, 9), udp(1, 5060, sipOptions)))},
		frame{LinkEthernet, []byte{1, 2, 3}}, // error path
		frame{99, []byte{1, 2, 3}},           // unsupported link
	)
	var p Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, fr := range frames {
			_ = Decode(fr.link, fr.data, &p)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	var frames []frame
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	for _, f := range files {
		frames = append(frames, readCorpus(b, filepath.Base(f))...)
	}
	if len(frames) == 0 {
		b.Fatal("no corpus")
	}
	var p Packet
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		fr := frames[n%len(frames)]
		_ = Decode(fr.link, fr.data, &p)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}
