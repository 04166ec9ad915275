// Package compile turns a policy into a backend-neutral ruleset (package ir),
// for the capabilities of a backend: iptables can search packets for strings
// (xt_string) and nftables cannot, so with nftables the hostname knock and the
// user-agent checks are handed to sipwall's userspace inspector.
package compile

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// InspectGroup is the nflog group on which the nftables ruleset hands SIP
// packets of unknown sources to sipwall's userspace inspector.
const InspectGroup = 5060

// Set names, shared by the compiler, the renderers, apply and the engine.
const (
	SetAdmitted = "admitted" // sources that knocked (hostname or user-agent)
	SetAllowed  = "allowed"  // sources admitted by hand (sipwall allow)
	SetTrusted  = "trusted"  // the policy's trusted networks (static)
	SetScanners = "scanners" // sources banned as SIP scanners
	SetTrapped  = "trapped"  // sources that hit a trap port
	SetBanned   = "banned"   // sources banned by hand or by guard
	SetAnswered = "answered" // sources banned by the failure answers they collected (sip.answers)
	// With nftables each hand-filled list is two sets: the list's own name
	// holds single addresses in a hash (a change costs the same whatever
	// the list's size) and its -net twin holds networks in an interval set
	// (committing any change to one walks the whole tree).
	SetBannedNet  = "banned-net"  // networks of the banned list (nftables)
	SetAllowedNet = "allowed-net" // networks of the allowed list (nftables)
	// SetFleet holds CrowdSec's decisions, pulled by guard (crowdsec:).
	SetFleet    = "fleet"
	SetFleetNet = "fleet-net" // networks of the fleet list (nftables)
	// FeedPrefix names a feed's list: feed-NAME (feeds:).
	FeedPrefix = "feed-"
)

// FeedSet is the list of feed name.
func FeedSet(name string) string { return FeedPrefix + name }

// signaturePrefix starts the comment of a rule or of a scanners-list
// entry that a scanner signature decided.
const signaturePrefix = "scanner signature "

// SignatureComment is the comment of a scanners-list entry banned for
// carrying signature (guard's inspector writes it with the ban): sipwall
// stats counts the list's sources by signature with SignatureOf.
func SignatureComment(signature string) string { return signaturePrefix + signature }

// SignatureOf returns the signature a SignatureComment names.
func SignatureOf(comment string) (string, bool) { return strings.CutPrefix(comment, signaturePrefix) }

// Chain names of the sipwall profile.
const (
	ChainRawPre    = "sipwall-pre"
	ChainRawPublic = "sipwall-public"
	ChainRawSIP    = "sipwall-sip"
	ChainScanner   = "sipwall-scanner"
	ChainInput     = "sipwall-input"
	ChainForward   = "sipwall-forward"
	ChainOutput    = "sipwall-output"
	ChainTCPKnock  = "sipwall-tcp-knock"
	ChainTrapped   = "sipwall-trapped"
	ChainICMP      = "sipwall-icmp"
	ChainICMPv6    = "sipwall-icmpv6"
	ChainSpoof     = "sipwall-spoof"
	ChainTraps     = "sipwall-traps"
	ChainTrapBan   = "sipwall-trap-ban"
	ChainSIPIn     = "sipwall-sip-in"
	// The answer counting chains (sip.answers), in the raw table's OUTPUT.
	ChainAnswersOut = "sipwall-answers"
	ChainAnswer     = "sipwall-answer"
	ChainAuthFail   = "sipwall-auth-failure"
	ChainNotFound   = "sipwall-not-found"
)

// Options are the inputs of a compilation besides the policy.
type Options struct {
	Backend backend.Name
	// Resolved holds the addresses of policy.Trusted.Hosts, by name.
	Resolved map[string][]netip.Addr
}

// IPv6NeededICMP are the ICMPv6 types IPv6 needs to work (RFC 4890): errors,
// echo, multicast listener discovery, neighbour discovery, inverse ND, SEND.
var IPv6NeededICMP = []int{1, 2, 3, 4, 128, 129, 130, 131, 132, 133, 134, 135, 136, 141, 142, 143, 148, 149, 151, 152, 153}

// Compile builds the sipwall ruleset for p.
func Compile(p *policy.Policy, o Options) (*ir.Ruleset, error) {
	if o.Backend != backend.IPTables && o.Backend != backend.NFTables {
		return nil, fmt.Errorf("compile: unknown backend %q", o.Backend)
	}
	c := &compiler{p: p, o: o, rs: &ir.Ruleset{Profile: "sipwall", Families: ir.IPv4}}
	if p.IPv6 {
		c.rs.Families = ir.Both
	}
	if err := c.trusted(); err != nil {
		return nil, err
	}
	c.sets()
	c.raw()
	c.answers()
	if p.SIP.Mode != policy.ModeScannersOnly {
		c.filter()
	}
	c.notes()
	return c.rs, nil
}

type compiler struct {
	p        *policy.Policy
	o        Options
	rs       *ir.Ruleset
	trustAll []netip.Prefix
	trustSIP []netip.Prefix
}

func (c *compiler) nft() bool { return c.o.Backend == backend.NFTables }

// knocks reports whether SIP admission depends on a knock.
func (c *compiler) knocks() bool {
	return c.p.SIP.Mode == policy.ModeHostname || c.p.SIP.Mode == policy.ModeUserAgent
}

func (c *compiler) trusted() error {
	c.trustAll = prefixes(c.p.Trusted.All)
	c.trustSIP = prefixes(c.p.Trusted.SIP)
	for _, h := range c.p.Trusted.Hosts {
		addrs, ok := c.o.Resolved[h.Name]
		if !ok || len(addrs) == 0 {
			return fmt.Errorf("compile: trusted host %q was not resolved", h.Name)
		}
		for _, a := range addrs {
			a = a.Unmap()
			pf := netip.PrefixFrom(a, a.BitLen())
			if h.Access == "all" {
				c.trustAll = append(c.trustAll, pf)
			} else {
				c.trustSIP = append(c.trustSIP, pf)
			}
		}
	}
	return nil
}

func prefixes(ps []policy.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}

func (c *compiler) sets() {
	size := c.p.Lists.Capacity
	fam := c.rs.Families
	add := func(s *ir.Set) { c.rs.Sets = append(c.rs.Sets, s) }
	if c.nft() {
		add(&ir.Set{Name: SetBanned, Families: fam, Size: size, Comment: "addresses banned by hand or by guard: every port"})
		add(&ir.Set{Name: SetBannedNet, List: SetBanned, Families: fam, Interval: true, Size: size, Comment: "networks banned by hand: every port"})
	} else {
		add(&ir.Set{Name: SetBanned, Families: fam, Interval: true, Size: size, Comment: "banned by hand or by guard: every port"})
	}
	// Lists filled by guard from elsewhere: CrowdSec's decisions and the
	// blocklist feeds, each kept as addresses plus networks like banned.
	twin := func(name, comment string) {
		if c.nft() {
			add(&ir.Set{Name: name, Families: fam, Size: size, Comment: comment})
			add(&ir.Set{Name: name + "-net", List: name, Families: fam, Interval: true, Size: size, Comment: comment + " (networks)"})
		} else {
			add(&ir.Set{Name: name, Families: fam, Interval: true, Size: size, Comment: comment})
		}
	}
	if c.p.CrowdSec.Enabled() {
		twin(SetFleet, "banned by the fleet: CrowdSec decisions, every port")
	}
	for _, f := range c.p.Feeds {
		twin(FeedSet(f.Name), "on the "+f.Name+" feed: every port")
	}
	add(&ir.Set{Name: SetScanners, Families: fam, Dynamic: true, Size: size, Timeout: c.p.SIP.Scanners.BanFor.Duration, Comment: "SIP scanners: every port"})
	if c.p.SIP.Answers.Enabled() {
		add(&ir.Set{Name: SetAnswered, Families: fam, Dynamic: true, Size: size, Timeout: c.p.SIP.Answers.BanFor.Duration, Comment: "sources that collected too many failure answers (password guessing, enumeration): every port"})
	}
	// Trusted and allowed sources exist in every mode: they are never
	// banned, trapped or rate-limited, whatever their packets contain.
	trusted := append(append([]netip.Prefix(nil), c.trustAll...), c.trustSIP...)
	add(&ir.Set{Name: SetTrusted, Families: fam, Interval: true, Static: true, Size: size, Elements: dedupe(trusted), Comment: "trusted networks from the policy"})
	if c.nft() {
		add(&ir.Set{Name: SetAllowed, Families: fam, Size: size, Comment: "addresses admitted to SIP by hand"})
		add(&ir.Set{Name: SetAllowedNet, List: SetAllowed, Families: fam, Interval: true, Size: size, Comment: "networks admitted to SIP by hand"})
	} else {
		add(&ir.Set{Name: SetAllowed, Families: fam, Interval: true, Size: size, Comment: "sources admitted to SIP by hand"})
	}
	if c.p.SIP.Mode == policy.ModeScannersOnly {
		return
	}
	add(&ir.Set{Name: SetTrapped, Families: fam, Dynamic: true, Size: size, Timeout: c.p.Traps.BanFor.Duration, Comment: "port scanners caught by a trap port: every port"})
	if c.knocks() {
		add(&ir.Set{Name: SetAdmitted, Families: fam, Dynamic: true, Size: size, Timeout: c.p.SIP.AdmitFor.Duration, Comment: "sources admitted to SIP by their knock"})
	}
}

// untrusted returns the matches of a source that is neither trusted nor
// allowed by hand: what every ban, trap and limit requires.
func (c *compiler) untrusted() []ir.Match {
	ms := []ir.Match{ir.InSet{Set: SetTrusted, Neg: true}, ir.InSet{Set: SetAllowed, Neg: true}}
	if c.nft() {
		ms = append(ms, ir.InSet{Set: SetAllowedNet, Neg: true})
	}
	return ms
}

func dedupe(ps []netip.Prefix) []netip.Prefix {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Addr() != ps[j].Addr() {
			return ps[i].Addr().Less(ps[j].Addr())
		}
		return ps[i].Bits() < ps[j].Bits()
	})
	// Sorted by address then length, a prefix covering another comes
	// first, and the prefixes kept are disjoint: only the last one kept can
	// cover the next, so one pass is enough.
	var out []netip.Prefix
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// chain appends a new chain to the ruleset.
func (c *compiler) chain(t ir.Table, name string, hook ir.Hook, policy ir.Verdict) *ir.Chain {
	ch := &ir.Chain{Table: t, Name: name, Hook: hook, Policy: policy}
	c.rs.Chains = append(c.rs.Chains, ch)
	return ch
}

// rule builds a rule of kind k.
func rule(k ir.Kind, comment string, v ir.Verdict, ms ...ir.Match) *ir.Rule {
	return &ir.Rule{Matches: ms, Verdict: v, Comment: comment, Kind: k}
}

func appendRules(ch *ir.Chain, rs ...*ir.Rule) { ch.Rules = append(ch.Rules, rs...) }

// fam sets a rule's family and returns it.
func fam(f ir.Family, r *ir.Rule) *ir.Rule {
	r.Family = f
	return r
}

func ports(ps []policy.Port) []ir.PortRange {
	out := make([]ir.PortRange, len(ps))
	for i, p := range ps {
		out[i] = ir.PortRange{From: p.From, To: p.To}
	}
	return out
}

// byFamily splits prefixes by address family.
func byFamily(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return
}

// srcRules returns one rule per family for prefixes (none for an empty family).
func (c *compiler) srcRules(k ir.Kind, ps []netip.Prefix, dst bool, comment string, v ir.Verdict, extra ...ir.Match) []*ir.Rule {
	var out []*ir.Rule
	v4, v6 := byFamily(ps)
	for _, f := range []struct {
		fam ir.Family
		ps  []netip.Prefix
	}{{ir.IPv4, v4}, {ir.IPv6, v6}} {
		if len(f.ps) == 0 || !c.rs.Families.Has(f.fam) {
			continue
		}
		var m ir.Match = ir.Src{Prefixes: f.ps}
		if dst {
			m = ir.Dst{Prefixes: f.ps}
		}
		r := rule(k, comment, v, append([]ir.Match{m}, extra...)...)
		r.Family = f.fam
		out = append(out, r)
	}
	return out
}

// seconds renders a period for comments.
func seconds(d time.Duration) string { return policy.Duration{Duration: d}.String() }
