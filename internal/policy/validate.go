package policy

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

var ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}\+?$`)

// hostnameRE accepts DNS names (the secret hostname is matched as plain text).
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

// MaxMatch is the longest text the kernel's string match takes
// (XT_STRING_MAX_PATTERN_SIZE): signatures, secret hostnames, user-agents.
const MaxMatch = 128

// control returns the first control character in s (C0, DEL, C1), if any.
func control(s string) (rune, bool) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return r, true
		}
	}
	return 0, false
}

// short quotes a value for an error message, at most 64 bytes of it: a
// 10 MB value is not echoed whole.
func short(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// validate checks everything a policy must satisfy to compile. Problems that
// a user may knowingly accept are reported by Lint instead.
func (p *Policy) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: p.Source, Line: p.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if len(p.Interfaces.Public) == 0 {
		bad("interfaces.public", "at least one public interface is needed (eth+ matches eth0, eth1…)")
	}
	for i, n := range p.Interfaces.Public {
		if !ifaceRE.MatchString(n) {
			bad(fmt.Sprintf("interfaces.public[%d]", i), "%s is not an interface name (up to 15 characters, a trailing + is a wildcard)", short(n))
		}
	}
	for key, v := range map[string]string{"defaults.input": p.Defaults.Input, "defaults.forward": p.Defaults.Forward, "defaults.output": p.Defaults.Output} {
		if v != "accept" && v != "drop" {
			bad(key, "%s is not a chain policy (accept or drop)", short(v))
		}
	}
	for i, h := range p.Trusted.Hosts {
		key := fmt.Sprintf("trusted.hosts[%d]", i)
		if !hostnameRE.MatchString(h.Name) {
			bad(key+".name", "%s is not a DNS name", short(h.Name))
		}
		if h.Access != "all" && h.Access != "sip" {
			bad(key+".access", "%s must be all or sip", short(h.Access))
		}
	}
	for i, t := range p.ICMP.Types {
		if t < 0 || t > 255 {
			bad(fmt.Sprintf("icmp.types[%d]", i), "%d is not an ICMP type (0-255)", t)
		}
	}
	for i, t := range p.ICMP.IPv6Types {
		if t < 0 || t > 255 {
			bad(fmt.Sprintf("icmp.ipv6_types[%d]", i), "%d is not an ICMPv6 type (0-255)", t)
		}
	}
	p.checkRate(&errs, "spoofing.syn_rate", p.Spoofing.SynRate)
	p.checkRate(&errs, "sip.rate_limits.register", p.SIP.RateLimits.Register)
	p.checkRate(&errs, "sip.rate_limits.invite", p.SIP.RateLimits.Invite)
	p.checkRate(&errs, "log.drops", p.Log.Drops)
	if p.Traps.BanFor.Duration == 0 && p.hasTrapBan() {
		bad("traps.ban_for", "a trap ban needs a duration (the article: 10m)")
	}
	switch p.SIP.Mode {
	case ModeHostname:
		if len(p.SIP.Hostnames) == 0 {
			bad("sip.hostnames", "mode hostname needs at least one secret hostname (the name your phones use to reach the server)")
		}
	case ModeUserAgent:
		if len(p.SIP.UserAgents) == 0 {
			bad("sip.user_agents", "mode user-agent needs at least one user-agent to admit (e.g. Zoiper)")
		}
	case ModeOpen, ModeScannersOnly:
	default:
		bad("sip.mode", "%s is not a mode (hostname, user-agent, open, scanners-only)", short(p.SIP.Mode))
	}
	for i, h := range p.SIP.Hostnames {
		switch key := fmt.Sprintf("sip.hostnames[%d]", i); {
		case len(h) > MaxMatch:
			bad(key, "%s is longer than %d characters, the most the kernel's string match (xt_string) takes", short(h), MaxMatch)
		case !hostnameRE.MatchString(h):
			bad(key, "%s is not a DNS name", short(h))
		}
	}
	for i, ua := range p.SIP.UserAgents {
		key := fmt.Sprintf("sip.user_agents[%d]", i)
		if strings.TrimSpace(ua) == "" || len(ua) > MaxMatch {
			bad(key, "a user-agent must be 1-%d characters", MaxMatch)
		} else if c, ok := control(ua); ok {
			bad(key, "%s contains the control character %U: a SIP header value cannot", short(ua), c)
		}
	}
	for i, s := range p.SIP.Scanners.Signatures {
		key := fmt.Sprintf("sip.scanners.signatures[%d]", i)
		if len(s.Match) > MaxMatch {
			bad(key, "a signature must be at most %d characters", MaxMatch)
		} else if c, ok := control(s.Match); ok {
			bad(key, "%s contains the control character %U (a line break or the like): a signature is text within one SIP line", short(s.Match), c)
		}
	}
	if len(p.SIP.UDPPorts)+len(p.SIP.TCPPorts)+len(p.SIP.TLSPorts) == 0 {
		bad("sip", "no SIP port at all (udp_ports, tcp_ports, tls_ports)")
	}
	if p.Lists.Capacity < 1 || p.Lists.Capacity > 1<<26 {
		bad("lists.capacity", "%d is out of range (1 to %d)", p.Lists.Capacity, 1<<26)
	}
	g := p.Guard
	if g.MaxRetry < 1 || g.MaxRetry > 1000 {
		bad("guard.maxretry", "%d is out of range (1 to 1000)", g.MaxRetry)
	}
	for key, d := range map[string]Duration{"guard.findtime": g.FindTime, "guard.bantime": g.BanTime, "guard.max_bantime": g.MaxBanTime, "guard.resolve_every": g.ResolveEvery, "guard.save_every": g.SaveEvery} {
		if d.Duration <= 0 {
			bad(key, "must be a positive duration")
		}
	}
	if g.IPv6Prefix != 0 && (g.IPv6Prefix < 16 || g.IPv6Prefix > 128) {
		bad("guard.ipv6_prefix", "%d is out of range (16 to 128, or 0 for single addresses)", g.IPv6Prefix)
	}
	if g.BanTimeFactor < 1 || g.BanTimeFactor > 100 {
		bad("guard.bantime_factor", "%d is out of range (1 to 100)", g.BanTimeFactor)
	}
	if g.MaxBanTime.Duration < g.BanTime.Duration {
		bad("guard.max_bantime", "%s is shorter than guard.bantime %s", g.MaxBanTime, g.BanTime)
	}
	if g.Metrics != "off" {
		if _, err := netip.ParseAddrPort(g.Metrics); err != nil {
			bad("guard.metrics", "%s is not an address:port (like 127.0.0.1:9765) or off", short(g.Metrics))
		}
	}
	if g.AMI.Address != "" {
		if _, _, err := net.SplitHostPort(g.AMI.Address); err != nil {
			bad("guard.ami.address", "%s is not host:port (like 127.0.0.1:5038)", short(g.AMI.Address))
		}
		if g.AMI.User == "" {
			bad("guard.ami.user", "an AMI address needs a user")
		}
	}
	if len(p.Log.Prefix) > 28 {
		bad("log.prefix", "%s is longer than the kernel's 28 characters", short(p.Log.Prefix))
	} else if c, ok := control(p.Log.Prefix); ok {
		bad("log.prefix", "%s contains the control character %U", short(p.Log.Prefix), c)
	} else if i := strings.IndexAny(p.Log.Prefix, `"\$`); i >= 0 {
		bad("log.prefix", "%s contains %q, which nft cannot carry in a log prefix (it ends the string, escapes, or names a variable)", short(p.Log.Prefix), p.Log.Prefix[i])
	}
	return errs
}

func (p *Policy) checkRate(errs *[]error, key string, r Rate) {
	if r.Count < 0 || r.Count > 10000 {
		*errs = append(*errs, &Error{File: p.Source, Line: p.lineOf(key + ".count"), Key: key + ".count", Msg: fmt.Sprintf("%d is out of range (0 disables, up to 10000)", r.Count)})
	}
	if r.Count > 0 && r.Per.Duration <= 0 {
		*errs = append(*errs, &Error{File: p.Source, Line: p.lineOf(key + ".per"), Key: key + ".per", Msg: "a rate needs a period (per: 10s)"})
	}
}

// lineOf finds the line of key or, failing that, of its nearest parent.
func (p *Policy) lineOf(key string) int {
	for key != "" {
		if l, ok := p.pos[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func (p *Policy) hasTrapBan() bool {
	for _, t := range p.Traps.Ports {
		if t.Action == TrapBan {
			return true
		}
	}
	return false
}

// SIPTCPPorts are the TCP ports that carry SIP: tcp_ports plus tls_ports.
func (p *Policy) SIPTCPPorts() []Port {
	out := append([]Port(nil), p.SIP.TCPPorts...)
	for _, t := range p.SIP.TLSPorts {
		covered := false
		for _, c := range p.SIP.TCPPorts {
			if c.From <= t.From && t.To <= c.To {
				covered = true
			}
		}
		if !covered {
			out = append(out, t)
		}
	}
	return out
}

// Bogons returns the bogon source ranges minus the exempt ones: an exempt
// range inside a bogon splits it, so only the exempt part is let through.
func (p *Policy) Bogons() []netip.Prefix {
	var out []netip.Prefix
	for _, b := range p.Spoofing.Bogons {
		parts := []netip.Prefix{b.Prefix}
		for _, e := range p.Spoofing.Exempt {
			var next []netip.Prefix
			for _, part := range parts {
				next = append(next, subtract(part, e.Prefix)...)
			}
			parts = next
		}
		out = append(out, parts...)
	}
	return out
}

// subtract returns the prefixes covering a minus b.
func subtract(a, b netip.Prefix) []netip.Prefix {
	if a.Addr().Is4() != b.Addr().Is4() || !a.Overlaps(b) {
		return []netip.Prefix{a}
	}
	if b.Bits() <= a.Bits() {
		return nil // b covers a
	}
	// Split a in two halves and recurse into the half that holds b.
	bits := a.Bits() + 1
	lo := netip.PrefixFrom(a.Addr(), bits)
	hiAddr := a.Addr().AsSlice()
	hiAddr[(bits-1)/8] |= 0x80 >> ((bits - 1) % 8)
	ha, _ := netip.AddrFromSlice(hiAddr)
	hi := netip.PrefixFrom(ha, bits)
	if lo.Overlaps(b) {
		return append(subtract(lo, b), hi)
	}
	return append([]netip.Prefix{lo}, subtract(hi, b)...)
}
