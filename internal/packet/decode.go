package packet

import (
	"encoding/binary"
	"net/netip"
)

// maxVLANTags bounds the 802.1Q / 802.1ad tag stack Decode walks.
const maxVLANTags = 8

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// Decode decodes one captured frame of the given link type into p,
// overwriting all of p. It never allocates and never panics. On error the
// returned value is a *DecodeError and the layers before the failing one
// are filled in (p.Layers says which).
func Decode(linkType LinkType, data []byte, p *Packet) error {
	*p = Packet{LinkType: linkType}
	switch linkType {
	case LinkEthernet:
		if len(data) < 14 {
			return errEthTrunc
		}
		p.Layers.add(LayerEthernet)
		return p.decodeEtherType(be16(data[12:14]), data[14:])
	case LinkLinuxSLL:
		if len(data) < 16 {
			return errSLLTrunc
		}
		p.HasPktType = true
		p.PktType = PacketType(be16(data[0:2]))
		p.Layers.add(LayerSLL)
		return p.decodeEtherType(be16(data[14:16]), data[16:])
	case LinkLinuxSLL2:
		if len(data) < 20 {
			return errSLL2Trunc
		}
		p.HasPktType = true
		p.IfIndex = be32(data[4:8])
		p.PktType = PacketType(data[10])
		p.Layers.add(LayerSLL2)
		return p.decodeEtherType(be16(data[0:2]), data[20:])
	case LinkRaw, LinkRawDLT12, LinkRawDLT14:
		if len(data) == 0 {
			return errRawEmpty
		}
		switch data[0] >> 4 {
		case 4:
			p.EtherType = EtherTypeIPv4
			return p.decodeIPv4(data)
		case 6:
			p.EtherType = EtherTypeIPv6
			return p.decodeIPv6(data)
		}
		return errRawVersion
	case LinkIPv4:
		p.EtherType = EtherTypeIPv4
		return p.decodeIPv4(data)
	case LinkIPv6:
		p.EtherType = EtherTypeIPv6
		return p.decodeIPv6(data)
	case LinkNull, LinkLoop:
		if len(data) < 4 {
			return errLoopTrunc
		}
		var family uint32
		if linkType == LinkLoop {
			family = be32(data[0:4])
		} else {
			// Host byte order of the capturing machine: whichever reading
			// gives a small number is the right one.
			family = binary.LittleEndian.Uint32(data[0:4])
			if family > 0xffff {
				family = be32(data[0:4])
			}
		}
		p.Layers.add(LayerLoopback)
		switch family {
		case 2: // AF_INET everywhere
			p.EtherType = EtherTypeIPv4
			return p.decodeIPv4(data[4:])
		case 10, 24, 28, 30: // AF_INET6: Linux, Net/OpenBSD, FreeBSD, Darwin
			p.EtherType = EtherTypeIPv6
			return p.decodeIPv6(data[4:])
		}
		return nil
	}
	return errLinkUnsupported
}

// decodeEtherType dispatches on an EtherType, walking VLAN tags first. b
// starts right after the EtherType field.
func (p *Packet) decodeEtherType(et uint16, b []byte) error {
	for et == EtherTypeVLAN || et == EtherTypeQinQ || et == EtherTypeQinQ2 {
		if p.VLANs == maxVLANTags {
			return errVLANDepth
		}
		if len(b) < 4 {
			return errVLANTrunc
		}
		if p.VLANs == 0 {
			p.VLAN = be16(b[0:2]) & 0x0fff
		}
		p.VLANs++
		p.Layers.add(LayerVLAN)
		et = be16(b[2:4])
		b = b[4:]
	}
	p.EtherType = et
	switch et {
	case EtherTypeIPv4:
		return p.decodeIPv4(b)
	case EtherTypeIPv6:
		return p.decodeIPv6(b)
	}
	return nil
}

func (p *Packet) decodeIPv4(b []byte) error {
	if len(b) < 20 {
		return errIPv4Trunc
	}
	if b[0]>>4 != 4 {
		return errIPv4Version
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return errIPv4IHL
	}
	if len(b) < ihl {
		return errIPv4Trunc
	}
	total := int(be16(b[2:4]))
	if total == 0 {
		// Segmentation offload: the sending host's capture sees the
		// datagram before the NIC fills in the length. Take the frame.
		total = len(b)
	}
	if total < ihl {
		return errIPv4TotalLen
	}
	p.IPVersion = 4
	p.TOS = b[1]
	p.L3Len = total
	p.IHL = uint8(ihl)
	p.IPID = uint32(be16(b[4:6]))
	flags := be16(b[6:8])
	p.DF = flags&0x4000 != 0
	p.MF = flags&0x2000 != 0
	p.FragOffset = (flags & 0x1fff) * 8
	p.Fragmented = p.MF || p.FragOffset != 0
	p.TTL = b[8]
	p.Protocol = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if ihl > 20 {
		p.IPOptions = b[20:ihl]
	}
	end := total
	if len(b) < end {
		p.Truncated = true
		end = len(b)
	}
	p.Layers.add(LayerIPv4)
	p.Network = b[:end]
	data := b[ihl:end]
	if p.FragOffset != 0 {
		p.Payload = data
		return nil
	}
	return p.decodeTransport(data)
}

func (p *Packet) decodeIPv6(b []byte) error {
	if len(b) < 40 {
		return errIPv6Trunc
	}
	if b[0]>>4 != 6 {
		return errIPv6Version
	}
	plen := int(be16(b[4:6]))
	p.IPVersion = 6
	p.TOS = uint8(be16(b[0:2]) >> 4)
	p.TTL = b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	end := 40 + plen
	if plen == 0 {
		// A jumbogram, or segmentation offload: take the frame.
		end = len(b)
	}
	p.L3Len = end
	if len(b) < end {
		p.Truncated = true
		end = len(b)
	}
	p.Layers.add(LayerIPv6)
	p.Network = b[:end]
	next := b[6]
	data := b[40:end]
	for {
		var hl int
		switch next {
		case ProtoHopOpts, ProtoRouting, ProtoDstOpts:
			if len(data) < 2 {
				return errIPv6ExtTrunc
			}
			hl = (int(data[1]) + 1) * 8
		case ProtoAH:
			if len(data) < 2 {
				return errIPv6ExtTrunc
			}
			hl = (int(data[1]) + 2) * 4
		case ProtoFragment:
			if len(data) < 8 {
				return errIPv6ExtTrunc
			}
			fo := be16(data[2:4])
			p.FragOffset = fo &^ 7
			p.MF = fo&1 != 0
			p.Fragmented = p.MF || p.FragOffset != 0
			p.IPID = be32(data[4:8])
			hl = 8
		default:
			p.Protocol = next
			if p.FragOffset != 0 {
				p.Payload = data
				return nil
			}
			return p.decodeTransport(data)
		}
		if len(data) < hl {
			return errIPv6ExtTrunc
		}
		p.Layers.add(LayerIPv6Ext)
		next = data[0]
		data = data[hl:]
	}
}

// decodeTransport decodes the transport header at the start of an IP
// payload. In a first fragment a transport header cut by the fragment's end
// is not an error: Payload holds the fragment and no ports are decoded.
func (p *Packet) decodeTransport(data []byte) error {
	var err error
	switch p.Protocol {
	case ProtoTCP:
		err = p.decodeTCP(data)
	case ProtoUDP:
		err = p.decodeUDP(data)
	case ProtoICMP:
		err = p.decodeICMP(data, LayerICMP, errICMPTrunc)
	case ProtoICMPv6:
		err = p.decodeICMP(data, LayerICMPv6, errICMPv6Trunc)
	default:
		p.Payload = data
	}
	if err != nil && p.Fragmented {
		p.Payload = data
		return nil
	}
	return err
}

func (p *Packet) decodeTCP(b []byte) error {
	if len(b) < 20 {
		return errTCPTrunc
	}
	off := int(b[12]>>4) * 4
	if off < 20 {
		return errTCPOffset
	}
	if len(b) < off {
		return errTCPTrunc
	}
	p.SrcPort = be16(b[0:2])
	p.DstPort = be16(b[2:4])
	p.Seq = be32(b[4:8])
	p.Ack = be32(b[8:12])
	p.TCPDataOffset = uint8(off)
	p.TCPFlags = b[13]
	p.Window = be16(b[14:16])
	p.Payload = b[off:]
	p.Layers.add(LayerTCP)
	return nil
}

func (p *Packet) decodeUDP(b []byte) error {
	if len(b) < 8 {
		return errUDPTrunc
	}
	ulen := int(be16(b[4:6]))
	if ulen < 8 && !(ulen == 0 && p.IPVersion == 6) {
		return errUDPLength
	}
	p.SrcPort = be16(b[0:2])
	p.DstPort = be16(b[2:4])
	p.UDPLength = uint16(ulen)
	end := ulen
	if end == 0 || end > len(b) {
		// IPv6 jumbogram (length 0), a first fragment, or a cut capture.
		end = len(b)
	}
	p.Payload = b[8:end]
	p.Layers.add(LayerUDP)
	return nil
}

func (p *Packet) decodeICMP(b []byte, l Layer, trunc *DecodeError) error {
	if len(b) < 4 {
		return trunc
	}
	p.ICMPType = b[0]
	p.ICMPCode = b[1]
	p.Payload = b[4:]
	p.Layers.add(l)
	return nil
}
