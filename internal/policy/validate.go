package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
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
		errs = append(errs, p.errorAt(key, format, args...))
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
	p.checkRate(&errs, "sip.answers.auth_failures", p.SIP.Answers.AuthFailures)
	p.checkRate(&errs, "sip.answers.not_found", p.SIP.Answers.NotFound)
	if p.SIP.Answers.Enabled() && p.SIP.Answers.BanFor.Duration == 0 {
		bad("sip.answers.ban_for", "a ban by answers needs a duration (like 1h); forever is not allowed")
	}
	if p.SIP.Answers.Enabled() && len(p.SIP.UDPPorts)+len(p.SIP.TCPPorts) == 0 {
		bad("sip.answers", "answers are counted on the SIP UDP and TCP ports, and the policy has none (TLS hides them)")
	}
	p.checkRate(&errs, "sip.unknown_budget", p.SIP.UnknownBudget)
	if p.SIP.UnknownBudget.Count > 0 && p.SIP.Mode != ModeHostname && p.SIP.Mode != ModeUserAgent {
		bad("sip.unknown_budget", "a budget for sources that have not knocked needs a knock: mode %s lets every source's SIP through already (use mode hostname or user-agent)", short(p.SIP.Mode))
	}
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
	errs = append(errs, p.validateGuard()...)
	errs = append(errs, p.validateFleet()...)
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
		*errs = append(*errs, p.errorAt(key+".count", "%d is out of range (0 disables, up to 10000)", r.Count))
	}
	if r.Count > 0 && r.Per.Duration <= 0 {
		*errs = append(*errs, p.errorAt(key+".per", "a rate needs a period (per: 10s)"))
	}
}

// errorAt is a problem with key: located by the command-line flag that set
// it, or by its line in the policy file.
func (p *Policy) errorAt(key, format string, args ...any) *Error {
	return &Error{File: p.Source, Line: p.lineOf(key), Key: key, Flag: p.flags[key], Msg: fmt.Sprintf(format, args...)}
}

// SetByFlag records that the value of key (a path such as "guard.maxretry")
// was given on the command line with flag (such as "--maxretry"), so that
// Validate's errors about it name the flag rather than a line of the file.
func (p *Policy) SetByFlag(key, flag string) {
	if p.flags == nil {
		p.flags = map[string]string{}
	}
	p.flags[key] = flag
}

// Flag returns the command-line flag that set key, "" when the value comes
// from the policy file or the defaults.
func (p *Policy) Flag(key string) string {
	return p.flags[key]
}

// Where names the origin of key's value for a message: the flag that set
// it, or "FILE:LINE: key".
func (p *Policy) Where(key string) string {
	if f := p.flags[key]; f != "" {
		return f
	}
	if p.Source == "" {
		return key
	}
	e := Error{File: p.Source, Line: p.lineOf(key), Key: key}
	return strings.TrimSuffix(e.Error(), ": ")
}

// Validate checks the policy again after values were changed in memory (by
// command-line flags, see SetByFlag): the same checks and bounds as when
// the file was loaded. Every problem is returned, joined.
func (p *Policy) Validate() error {
	return errors.Join(p.validate()...)
}

// ValidateGuard checks the guard section alone, with the same bounds: for
// a command that reads no policy file (guard --scan-log without -c).
func (p *Policy) ValidateGuard() error {
	return errors.Join(p.validateGuard()...)
}

// FlagErrors returns the errors of err (from Validate or ValidateGuard)
// that concern values given by command-line flags.
func FlagErrors(err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *Error
		if errors.As(err, &pe) && pe.Flag != "" {
			out = append(out, err)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
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

// Bounds of the guard section, one set for the policy file and the flags
// of `sipwall guard` that override it.
const (
	GuardMaxRetryMax  = 1000
	GuardBanFactorMax = 100
	GuardFindTimeMax  = 7 * 24 * time.Hour
	// GuardBanTimeMax is the longest timeout the kernel's sets take
	// (ipset: 2147483 seconds, about 24 days).
	GuardBanTimeMax     = 2147483 * time.Second
	GuardResolveMin     = 10 * time.Second
	GuardPeriodMax      = 24 * time.Hour
	GuardPollMin        = time.Millisecond
	GuardPollMax        = 10 * time.Second
	GuardMaxLineMin     = 256
	GuardMaxLineMax     = 1 << 20
	guardMaxLogs        = 64
	guardMaxUnitNameLen = 256
)

// validateGuard checks the guard section.
// Bounds of the crowdsec and feeds sections.
const (
	CrowdSecPullMin = 100 * time.Millisecond
	CrowdSecPullMax = time.Hour
	FeedEveryMin    = time.Minute
	FeedEveryMax    = 7 * 24 * time.Hour
	feedsMax        = 16
)

var feedNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// validateFleet checks the crowdsec and feeds sections.
func (p *Policy) validateFleet() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, p.errorAt(key, format, args...))
	}
	c := p.CrowdSec
	if c.Enabled() {
		if !httpURL(c.URL) {
			bad("crowdsec.url", "%s is not an http(s) address like http://127.0.0.1:8080", short(c.URL))
		}
		if c.KeyFile == "" {
			bad("crowdsec.key_file", "the LAPI needs the bouncer's API key in a file (cscli bouncers add sipwall)")
		}
		if d := c.PullEvery.Duration; d != 0 && (d < CrowdSecPullMin || d > CrowdSecPullMax) {
			bad("crowdsec.pull_every", "%s is out of range (%s to %s)", d, CrowdSecPullMin, CrowdSecPullMax)
		}
		if (c.MachineID == "") != (c.PasswordFile == "") {
			bad("crowdsec.machine_id", "machine_id and password_file go together (cscli machines add)")
		}
		if (c.CertFile == "") != (c.CertKeyFile == "") {
			bad("crowdsec.cert_file", "cert_file and cert_key_file go together")
		}
		for i, sc := range c.Scopes {
			if l := strings.ToLower(sc); l != "ip" && l != "range" {
				bad(fmt.Sprintf("crowdsec.scopes[%d]", i), "%s is not a scope sipwall enforces (ip, range)", short(sc))
			}
		}
	} else if c.KeyFile != "" || c.MachineID != "" || c.PasswordFile != "" {
		bad("crowdsec.url", "the crowdsec section needs the LAPI's url")
	}
	if len(p.Feeds) > feedsMax {
		bad("feeds", "%d feeds is more than %d", len(p.Feeds), feedsMax)
	}
	seen := map[string]bool{}
	for i, f := range p.Feeds {
		key := fmt.Sprintf("feeds[%d]", i)
		if !feedNameRE.MatchString(f.Name) {
			bad(key+".name", "%s is not a feed name (lower-case letters, digits and dashes, up to 16)", short(f.Name))
		} else if seen[f.Name] {
			bad(key+".name", "%s names two feeds", f.Name)
		}
		seen[f.Name] = true
		switch {
		case f.URL == "":
			bad(key+".url", "a feed needs a url (http(s)://… or a file)")
		case strings.Contains(f.URL, "://") && !httpURL(f.URL):
			bad(key+".url", "%s is not an http(s) address or a file", short(f.URL))
		}
		switch f.Format {
		case "", "plain":
		case "apiban":
			if f.KeyFile == "" {
				bad(key+".key_file", "APIBan needs its API key in a file")
			}
		default:
			bad(key+".format", "%s is not a feed format (plain, apiban)", short(f.Format))
		}
		if d := f.Every.Duration; d != 0 && (d < FeedEveryMin || d > FeedEveryMax) {
			bad(key+".every", "%s is out of range (%s to %s)", d, FeedEveryMin, durationText(FeedEveryMax))
		}
		if f.Max < 0 || f.Max > p.Lists.Capacity {
			bad(key+".max", "%d is out of range (1 to lists.capacity, %d)", f.Max, p.Lists.Capacity)
		}
	}
	return errs
}

func (p *Policy) validateGuard() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, p.errorAt(key, format, args...))
	}
	g := p.Guard
	name := func(key string) string {
		if f := p.flags[key]; f != "" {
			return f
		}
		return key
	}
	if g.MaxRetry < 1 || g.MaxRetry > GuardMaxRetryMax {
		bad("guard.maxretry", "%d is out of range (1 to %d)", g.MaxRetry, GuardMaxRetryMax)
	}
	if g.IPv6Prefix != 0 && (g.IPv6Prefix < 16 || g.IPv6Prefix > 128) {
		bad("guard.ipv6_prefix", "%d is out of range (16 to 128, or 0 for single addresses)", g.IPv6Prefix)
	}
	if g.BanTimeFactor < 1 || g.BanTimeFactor > GuardBanFactorMax {
		bad("guard.bantime_factor", "%d is out of range (1 to %d; 1 turns escalation off)", g.BanTimeFactor, GuardBanFactorMax)
	}
	durations := []struct {
		key      string
		d        time.Duration
		min, max time.Duration
	}{
		{"guard.findtime", g.FindTime.Duration, time.Second, GuardFindTimeMax},
		{"guard.bantime", g.BanTime.Duration, time.Second, GuardBanTimeMax},
		{"guard.max_bantime", g.MaxBanTime.Duration, time.Second, GuardBanTimeMax},
		{"guard.resolve_every", g.ResolveEvery.Duration, GuardResolveMin, GuardPeriodMax},
		{"guard.save_every", g.SaveEvery.Duration, time.Second, GuardPeriodMax},
		{"guard.poll", g.Poll.Duration, GuardPollMin, GuardPollMax},
	}
	for _, d := range durations {
		if d.d < d.min || d.d > d.max {
			bad(d.key, "%s is out of range (%s to %s)", durationText(d.d), durationText(d.min), durationText(d.max))
		}
	}
	if g.BanTime.Duration > 0 && g.MaxBanTime.Duration > 0 && g.MaxBanTime.Duration < g.BanTime.Duration {
		bad("guard.max_bantime", "%s is shorter than %s %s: the longest ban cannot be shorter than a first ban", g.MaxBanTime, name("guard.bantime"), g.BanTime)
	}
	if g.MaxLine < GuardMaxLineMin || g.MaxLine > GuardMaxLineMax {
		bad("guard.max_line", "%d is out of range (%d to %d bytes)", g.MaxLine, GuardMaxLineMin, GuardMaxLineMax)
	}
	if g.Metrics != "off" {
		if _, err := netip.ParseAddrPort(g.Metrics); err != nil {
			bad("guard.metrics", "%s is not an address:port (like 127.0.0.1:9765) or off", short(g.Metrics))
		}
	}
	if len(g.Logs) > guardMaxLogs {
		bad("guard.logs", "%d logs is more than %d", len(g.Logs), guardMaxLogs)
	}
	for i, l := range g.Logs {
		key := fmt.Sprintf("guard.logs[%d]", i)
		if p.flags["guard.logs"] != "" {
			key = "guard.logs"
		}
		if unit, ok := strings.CutPrefix(l, JournalPrefix); ok {
			if !ValidUnit(unit) {
				bad(key, "%s is not a systemd unit name (journal:asterisk.service)", short(unit))
			}
			continue
		}
		if _, ctl := control(l); strings.TrimSpace(l) == "" || ctl {
			bad(key, "%s is not a file name", short(l))
		}
	}
	if g.AMI.Address != "" {
		if _, _, err := net.SplitHostPort(g.AMI.Address); err != nil {
			bad("guard.ami.address", "%s is not host:port (like 127.0.0.1:5038)", short(g.AMI.Address))
		}
		if g.AMI.User == "" {
			bad("guard.ami.user", "an AMI address (%s) needs a user", name("guard.ami.address"))
		}
	}
	return errs
}

// durationText writes d for an error message (0 as 0s, not forever).
func durationText(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return Duration{d}.String()
}

// ValidUnit reports whether u looks like a systemd unit name: no blanks or
// control characters, no option-like leading dash.
func ValidUnit(u string) bool {
	if u == "" || strings.HasPrefix(u, "-") || len(u) > guardMaxUnitNameLen {
		return false
	}
	for _, c := range u {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Exposure is what a policy admits from outside.
type Exposure struct {
	// TCP and UDP are the ports open to some source: SSH, SIP (TLS
	// included), RTP, the extra accepted ports and trap ports whose action
	// is accept.
	TCP, UDP []Port
	// TrapTCP are the trap ports that drop or ban.
	TrapTCP []Port
	// DefaultAccept is true when what no rule names is accepted: an input
	// policy of accept, or scanners-only mode in front of another firewall.
	DefaultAccept bool
}

// Exposure returns what the policy admits from outside.
func (p *Policy) Exposure() Exposure {
	e := Exposure{DefaultAccept: p.Defaults.Input == "accept" || p.SIP.Mode == ModeScannersOnly}
	e.TCP = append(append(append(e.TCP, p.SSH.Ports...), p.SIPTCPPorts()...), p.Extra.TCP...)
	e.UDP = append(append(append(e.UDP, p.SIP.UDPPorts...), p.SIP.RTPPorts...), p.Extra.UDP...)
	for _, t := range p.Traps.Ports {
		pr := Port{uint16(t.Port), uint16(t.Port)}
		if t.Action == TrapAccept {
			e.TCP = append(e.TCP, pr)
		} else {
			e.TrapTCP = append(e.TrapTCP, pr)
		}
	}
	return e
}
