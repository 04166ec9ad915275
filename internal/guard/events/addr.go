package events

import "net/netip"

// Address parsing on byte slices, so that matching does not allocate
// (netip.ParseAddr takes a string). The grammar is the one of
// netip.ParseAddr; a fuzz test checks the two agree.

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseIPv4 parses dotted-quad decimal without leading zeros.
func parseIPv4(b []byte) ([4]byte, bool) {
	var ip [4]byte
	n, digits, val := 0, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return ip, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return ip, false
			}
		case c == '.':
			if digits == 0 || n == 3 {
				return ip, false
			}
			ip[n] = byte(val)
			n++
			digits, val = 0, 0
		default:
			return ip, false
		}
	}
	if n != 3 || digits == 0 {
		return ip, false
	}
	ip[3] = byte(val)
	return ip, true
}

// parseIPv6 parses an IPv6 address without zone, with an optional embedded
// IPv4 tail.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		b = b[2:]
		if len(b) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(b); off++ {
			v := hexVal(b[off])
			if v < 0 {
				break
			}
			if off >= 4 {
				return netip.Addr{}, false
			}
			acc = acc<<4 | v
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(b) && b[off] == '.' {
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			copy(ip[i:], v4[:])
			i += 4
			b = b[len(b):]
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		b = b[off:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if len(b) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// parseIP parses an IPv4 or IPv6 address (a zone is dropped) and unmaps
// IPv4-mapped IPv6 addresses.
func parseIP(b []byte) (netip.Addr, bool) {
	for _, c := range b {
		switch c {
		case '.':
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			return netip.AddrFrom4(v4), true
		case ':':
			if z := indexByte(b, '%'); z >= 0 {
				if z == len(b)-1 {
					return netip.Addr{}, false
				}
				b = b[:z]
			}
			a, ok := parseIPv6(b)
			if !ok {
				return netip.Addr{}, false
			}
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// parsePort parses a decimal port 0-65535.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// parseHostPort parses the forms Asterisk prints a socket address in
// (ast_sockaddr_stringify and pjsip): "1.2.3.4", "1.2.3.4:5060",
// "[2001:db8::1]:5060", "[2001:db8::1]", "[1.2.3.4]:5060" and a bare
// "2001:db8::1".
func parseHostPort(b []byte) (netip.Addr, uint16, bool) {
	if len(b) == 0 {
		return netip.Addr{}, 0, false
	}
	if b[0] == '[' {
		end := indexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, 0, false
		}
		a, ok := parseIP(b[1:end])
		if !ok {
			return netip.Addr{}, 0, false
		}
		rest := b[end+1:]
		if len(rest) == 0 {
			return a, 0, true
		}
		if rest[0] != ':' {
			return netip.Addr{}, 0, false
		}
		p, ok := parsePort(rest[1:])
		return a, p, ok
	}
	colons, last := 0, -1
	for i, c := range b {
		if c == ':' {
			colons++
			last = i
		}
	}
	if colons == 1 { // IPv4 with port
		a, ok := parseIP(b[:last])
		if !ok || !a.Is4() {
			return netip.Addr{}, 0, false
		}
		p, ok := parsePort(b[last+1:])
		return a, p, ok
	}
	a, ok := parseIP(b)
	return a, 0, ok
}

// parseAddrSpec parses Asterisk's security-event address form
// "IPV4/UDP/1.2.3.4/5060" (also "IPV6/TLS/2001:db8::1/5061").
func parseAddrSpec(b []byte) (netip.Addr, uint16, string, bool) {
	if len(b) < 6 || b[0] != 'I' || b[1] != 'P' || b[2] != 'V' || (b[3] != '4' && b[3] != '6') || b[4] != '/' {
		return netip.Addr{}, 0, "", false
	}
	rest := b[5:]
	s := indexByte(rest, '/')
	if s < 0 {
		return netip.Addr{}, 0, "", false
	}
	tr, ok := transportName(rest[:s])
	if !ok {
		return netip.Addr{}, 0, "", false
	}
	rest = rest[s+1:]
	s = -1
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '/' {
			s = i
			break
		}
	}
	if s < 0 {
		return netip.Addr{}, 0, "", false
	}
	a, ok := parseIP(rest[:s])
	if !ok {
		return netip.Addr{}, 0, "", false
	}
	p, ok := parsePort(rest[s+1:])
	if !ok {
		return netip.Addr{}, 0, "", false
	}
	return a, p, tr, true
}
