package audit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// aclRule is one permit or deny of an Asterisk access control list.
type aclRule struct {
	Permit bool
	Prefix netip.Prefix
	Entry  astEntry
}

// parseACL reads the permit/deny settings among entries (permitKey and
// denyKey name them: "permit"/"deny" or "contact_permit"/"contact_deny").
// A value may list several addresses separated by commas, and "!" before an
// address inverts the rule, as in Asterisk. Unparsable addresses are
// returned as problems.
func parseACL(entries []astEntry, permitKey, denyKey string) ([]aclRule, []astProblem) {
	var rules []aclRule
	var probs []astProblem
	for _, e := range entries {
		var permit bool
		switch {
		case strings.EqualFold(e.Key, permitKey):
			permit = true
		case strings.EqualFold(e.Key, denyKey):
		default:
			continue
		}
		for item := range strings.SplitSeq(e.Value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			p := permit
			if strings.HasPrefix(item, "!") {
				p = !p
				item = strings.TrimSpace(item[1:])
			}
			pfx, err := parseACLAddress(item)
			if err != nil {
				probs = append(probs, astProblem{File: e.File, Line: e.Line, Kind: "syntax", Msg: fmt.Sprintf("%s=%s: %v", e.Key, e.Value, err)})
				continue
			}
			rules = append(rules, aclRule{Permit: p, Prefix: pfx, Entry: e})
		}
	}
	return rules, probs
}

// parseACLAddress reads "addr", "addr/bits" or "addr/dotted.mask".
func parseACLAddress(s string) (netip.Prefix, error) {
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(strings.Trim(addrPart, "[]"))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q", addrPart)
	}
	addr = addr.Unmap()
	bits := addr.BitLen()
	if hasMask {
		if n, err := strconv.Atoi(maskPart); err == nil {
			bits = n
		} else if m, err := netip.ParseAddr(maskPart); err == nil && m.Is4() && addr.Is4() {
			bits, err = maskBits(m)
			if err != nil {
				return netip.Prefix{}, err
			}
		} else {
			return netip.Prefix{}, fmt.Errorf("bad mask %q", maskPart)
		}
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad mask %q for %s", maskPart, addr)
	}
	return pfx, nil
}

// maskBits converts a dotted IPv4 netmask to a prefix length.
func maskBits(m netip.Addr) (int, error) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&(1<<31) != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %s is not contiguous", m)
	}
	return n, nil
}

// aclShape classifies what an ACL admits from the Internet.
type aclShape int

const (
	aclNone   aclShape = iota // no rules at all
	aclOpen                   // no deny of every address: anyone not explicitly denied is admitted
	aclWide                   // denies all, then permits a public range wider than needed
	aclNarrow                 // denies all, then permits only small or private ranges
)

// judgeACL classifies rules under Asterisk's semantics: the last rule that
// matches an address decides, and an address no rule matches is admitted.
// It returns the rule that makes the ACL open or wide, if any.
func judgeACL(rules []aclRule) (aclShape, aclRule) {
	if len(rules) == 0 {
		return aclNone, aclRule{}
	}
	last := -1
	for i, r := range rules {
		if r.Prefix.Bits() == 0 && !r.Permit {
			last = i
		}
	}
	if last < 0 {
		return aclOpen, rules[0]
	}
	shape, culprit := aclNarrow, aclRule{}
	for _, r := range rules[last+1:] {
		if !r.Permit {
			continue
		}
		if r.Prefix.Bits() == 0 {
			return aclOpen, r
		}
		if wideRange(r.Prefix) {
			shape, culprit = aclWide, r
		}
	}
	return shape, culprit
}

// wideRange reports whether p is a public range larger than an IPv4 /24 or
// an IPv6 /48.
func wideRange(p netip.Prefix) bool {
	if !isPublicAddr(p.Addr()) {
		return false
	}
	if p.Addr().Is4() {
		return p.Bits() < 24
	}
	return p.Bits() < 48
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isPublicAddr reports whether a is reachable from the Internet in general:
// not loopback, private, link-local, shared (CGNAT) or unspecified.
func isPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsPrivate() &&
		!a.IsLinkLocalUnicast() && !a.IsMulticast() && !cgnat.Contains(a)
}

// bindScope classifies the host part of a bind address.
type bindScope int

const (
	bindLocal   bindScope = iota // loopback
	bindPrivate                  // a private or link-local address
	bindAll                      // every address (0.0.0.0, ::, empty)
	bindPublic                   // a public address
	bindUnknown                  // a host name
)

func classifyBind(host string) bindScope {
	host = strings.Trim(strings.TrimSpace(host), "[]")
	if host == "" || host == "*" {
		return bindAll
	}
	if strings.EqualFold(host, "localhost") {
		return bindLocal
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return bindUnknown
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return bindAll
	case a.IsLoopback():
		return bindLocal
	case isPublicAddr(a):
		return bindPublic
	default:
		return bindPrivate
	}
}

// reachable reports whether a bind scope can be reached from the Internet.
func (s bindScope) reachable() bool { return s == bindAll || s == bindPublic }

// splitBind splits "host", "host:port", "[v6]:port" or a bare IPv6 address.
func splitBind(s string) (host string, port int, hasPort bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return s, 0, false
		}
		host = s[1:end]
		if rest := s[end+1:]; strings.HasPrefix(rest, ":") {
			if p, err := strconv.Atoi(rest[1:]); err == nil {
				return host, p, true
			}
		}
		return host, 0, false
	}
	if strings.Count(s, ":") == 1 {
		h, p, _ := strings.Cut(s, ":")
		if n, err := strconv.Atoi(p); err == nil {
			return h, n, true
		}
		return h, 0, false
	}
	return s, 0, false
}
