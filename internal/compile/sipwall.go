package compile

import (
	"fmt"
	"sort"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// raw builds the chains that run before conntrack: bans, scanner signatures,
// the knock and the per-source method rate limits.
func (c *compiler) raw() {
	p := c.p
	pre := c.chain(ir.Raw, ChainRawPre, ir.Prerouting, ir.VAccept)
	for _, ifc := range p.Interfaces.Public {
		appendRules(pre, rule(ir.KindDispatch, "public interface "+ifc, ir.JumpTo(ChainRawPublic), ir.InIface{Name: ifc}))
	}
	pub := c.chain(ir.Raw, ChainRawPublic, "", ir.Verdict{})
	// A ban by hand (or by guard, which never bans trusted sources) wins;
	// then trusted and allowed sources pass: no scanner ban, signature or
	// method limit applies to them, whatever their packets carry (a trunk
	// relays its callers' display names; an operator's phones chat).
	appendRules(pub, rule(ir.KindBanned, "banned by hand or by guard", ir.VDrop, ir.InSet{Set: SetBanned}))
	if c.nft() {
		appendRules(pub, rule(ir.KindBanned, "network banned by hand", ir.VDrop, ir.InSet{Set: SetBannedNet}))
	}
	appendRules(pub, rule(ir.KindExempt, "trusted: no signature or limit", ir.VReturn, ir.InSet{Set: SetTrusted}),
		rule(ir.KindExempt, "allowed: no signature or limit", ir.VReturn, ir.InSet{Set: SetAllowed}))
	if c.nft() {
		appendRules(pub, rule(ir.KindExempt, "allowed network: no signature or limit", ir.VReturn, ir.InSet{Set: SetAllowedNet}))
	}
	// Bans learnt elsewhere (CrowdSec, blocklist feeds) never cut off a
	// trusted or allowed source: they come after those pass.
	if c.p.CrowdSec.Enabled() {
		c.listDrop(pub, ir.KindFleet, SetFleet, "banned by the fleet (CrowdSec)")
	}
	for _, f := range c.p.Feeds {
		c.listDrop(pub, ir.KindFeed, FeedSet(f.Name), "on the "+f.Name+" feed")
	}
	if p.SIP.Answers.Enabled() {
		appendRules(pub, rule(ir.KindAnswerBanned, "banned by the failure answers it collected", ir.VDrop, ir.InSet{Set: SetAnswered}))
	}
	appendRules(pub, rule(ir.KindScannerBanned, "banned as a SIP scanner", ir.VDrop, ir.InSet{Set: SetScanners}))
	if len(p.SIP.UDPPorts) > 0 {
		appendRules(pub, rule(ir.KindDispatch, "SIP over UDP", ir.JumpTo(ChainRawSIP), ir.Proto{Proto: ir.ProtoUDP}, ir.DPort{Ports: ports(p.SIP.UDPPorts)}))
	}
	if tcp := p.SIPTCPPorts(); len(tcp) > 0 {
		appendRules(pub, rule(ir.KindDispatch, "SIP over TCP and TLS", ir.JumpTo(ChainRawSIP), ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: ports(tcp)}))
	}

	sip := c.chain(ir.Raw, ChainRawSIP, "", ir.Verdict{})
	if c.nft() {
		c.inspectHook(sip)
	} else {
		// An admitted source showed the secret (a scanner never does): its
		// requests may carry anything, a chat message or a caller's name
		// included, and are only rate-limited.
		var unknown []ir.Match
		if c.knocks() {
			c.refresh(sip)
			unknown = []ir.Match{ir.InSet{Set: SetAdmitted, Neg: true}}
		}
		for _, s := range p.SIP.Scanners.Signatures {
			ms := append(append([]ir.Match(nil), unknown...), ir.String{Pattern: s.Match, IgnoreCase: s.IgnoreCase, To: 65535})
			appendRules(sip, rule(ir.KindScannerSignature, SignatureComment(s.Match), ir.JumpTo(ChainScanner), ms...))
		}
		c.knock(sip)
	}
	// The UDP budget is counted before conntrack: a flow Asterisk answered
	// is established, and the filter table would accept the rest of a
	// flood.
	if r := c.budgetOver(ir.InSet{Set: SetAdmitted, Neg: true}, ir.Proto{Proto: ir.ProtoUDP}); r != nil {
		appendRules(sip, r)
	}
	c.methodLimit(sip, "REGISTER", p.SIP.RateLimits.Register)
	c.methodLimit(sip, "INVITE", p.SIP.RateLimits.Invite)

	scan := c.chain(ir.Raw, ChainScanner, "", ir.Verdict{})
	appendRules(scan,
		&ir.Rule{Stmts: []ir.Stmt{ir.AddToSet{Set: SetScanners}}, Comment: "remember the scanner", Kind: ir.KindScannerBan},
		rule(ir.KindScannerBan, "drop the scanner's packet", ir.VDrop))
}

// knock admits a source whose SIP packet carries a secret hostname (or an
// allowed user-agent): the article's NEWSIP chain, on ipsets.
func (c *compiler) knock(ch *ir.Chain) {
	var keys []policy.Signature
	switch c.p.SIP.Mode {
	case policy.ModeHostname:
		for _, h := range c.p.SIP.Hostnames {
			keys = append(keys, policy.Signature{Match: h, IgnoreCase: true})
		}
	case policy.ModeUserAgent:
		for _, ua := range c.p.SIP.UserAgents {
			keys = append(keys, policy.Signature{Match: ua, IgnoreCase: true})
		}
	default:
		return
	}
	add := ir.AddToSet{Set: SetAdmitted}
	for _, k := range keys {
		appendRules(ch, &ir.Rule{
			Matches: []ir.Match{ir.InSet{Set: SetAdmitted, Neg: true}, ir.String{Pattern: k.Match, IgnoreCase: k.IgnoreCase, To: 65535}},
			Stmts:   []ir.Stmt{add},
			Comment: "knock: " + k.Match,
			Kind:    ir.KindKnock,
		})
	}
}

// listDrop drops the sources of a list kept as addresses plus networks
// (nftables: two sets, the -net one for networks).
func (c *compiler) listDrop(ch *ir.Chain, k ir.Kind, set, comment string) {
	appendRules(ch, rule(k, comment, ir.VDrop, ir.InSet{Set: set}))
	if c.nft() {
		appendRules(ch, rule(k, comment+" (network)", ir.VDrop, ir.InSet{Set: set + "-net"}))
	}
}

// refresh keeps an admitted source admitted while it sends SIP.
func (c *compiler) refresh(ch *ir.Chain) {
	if c.p.SIP.AdmitFor.Duration > 0 {
		appendRules(ch, &ir.Rule{Matches: []ir.Match{ir.InSet{Set: SetAdmitted}}, Stmts: []ir.Stmt{ir.AddToSet{Set: SetAdmitted}}, Comment: "admitted: refresh", Kind: ir.KindAdmitted})
	}
}

// inspectHook is the nftables stand-in for string matching: SIP packets of
// sources that are neither admitted, allowed nor trusted go to the userspace
// inspector, which feeds the admitted and scanners sets.
func (c *compiler) inspectHook(ch *ir.Chain) {
	// Trusted and allowed sources never get here (sipwall-public).
	ms := []ir.Match{}
	if c.knocks() {
		ms = append(ms, ir.InSet{Set: SetAdmitted, Neg: true})
	}
	appendRules(ch, &ir.Rule{Matches: ms, Stmts: []ir.Stmt{ir.NFLog{Group: InspectGroup, Prefix: "sipwall-inspect"}}, Comment: "to the SIP inspector (sipwall guard)", Kind: ir.KindScannerInspected})
}

// methodLimit drops a source's requests of method beyond the rate, counting
// only requests whose request line starts the UDP or TCP payload.
func (c *compiler) methodLimit(ch *ir.Chain, method string, r policy.Rate) {
	if r.Count == 0 {
		return
	}
	needle := method + " sip:"
	over := ir.SourceRateOver{Name: "sipwall-" + lower(method), Rate: r.Count, Per: r.Per.Duration, Burst: r.Count, Size: c.p.Lists.Capacity}
	comment := fmt.Sprintf("%s over %d per %s", method, r.Count, seconds(r.Per.Duration))
	if c.nft() {
		appendRules(ch, rule(ir.KindRateLimit, comment, ir.VDrop, ir.Payload{Offset: 0, Bytes: needle}, over))
		return
	}
	// xt_string offsets count from the network header: the payload of UDP
	// starts right after the (option-less) IP header; TCP's header is 20 to
	// 60 bytes long, so the window covers every possible start of its payload.
	n := uint16(len(needle))
	for _, f := range []struct {
		fam   ir.Family
		ip    uint16
		proto uint8
		min   uint16
		max   uint16
	}{
		{ir.IPv4, 20, ir.ProtoUDP, 8, 8}, {ir.IPv4, 20, ir.ProtoTCP, 20, 60},
		{ir.IPv6, 40, ir.ProtoUDP, 8, 8}, {ir.IPv6, 40, ir.ProtoTCP, 20, 60},
	} {
		if !c.rs.Families.Has(f.fam) {
			continue
		}
		from := f.ip + f.min
		appendRules(ch, fam(f.fam, rule(ir.KindRateLimit, comment, ir.VDrop, ir.Proto{Proto: f.proto},
			ir.String{Pattern: needle, From: from, To: f.ip + f.max + n}, over)))
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 32
		}
	}
	return string(b)
}

// filter builds the chains that run after conntrack: the article's INPUT,
// ICMPALL, IPSPF, DPTS, RLMSET and ASIP chains.
func (c *compiler) filter() {
	p := c.p
	in := c.chain(ir.Filter, ChainInput, ir.Input, verdictOf(p.Defaults.Input))
	knocks := c.knocks()
	sipTCP := ports(p.SIPTCPPorts())
	sipUDP := ports(p.SIP.UDPPorts)
	rtp := ports(p.SIP.RTPPorts)
	if knocks && len(sipTCP) > 0 {
		for _, ifc := range p.Interfaces.Public {
			appendRules(in, rule(ir.KindDispatch, "TCP SIP: no data before the knock", ir.JumpTo(ChainTCPKnock),
				ir.InIface{Name: ifc}, ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: sipTCP}, ir.CTState{States: ir.CTEstablished | ir.CTRelated}))
		}
	}
	appendRules(in,
		rule(ir.KindConntrack, "invalid state", ir.VDrop, ir.CTState{States: ir.CTInvalid}),
		rule(ir.KindConntrack, "established flows", ir.VAccept, ir.CTState{States: ir.CTEstablished | ir.CTRelated}),
		rule(ir.KindLoopback, "loopback", ir.VAccept, ir.InIface{Name: "lo"}),
		rule(ir.KindTrapped, "caught by a trap port", ir.JumpTo(ChainTrapBan), append([]ir.Match{ir.InSet{Set: SetTrapped}}, c.untrusted()...)...),
		fam(ir.IPv4, rule(ir.KindDispatch, "ICMP", ir.JumpTo(ChainICMP), ir.Proto{Proto: ir.ProtoICMP})))
	if c.rs.Families.Has(ir.IPv6) {
		appendRules(in, fam(ir.IPv6, rule(ir.KindDispatch, "ICMPv6", ir.JumpTo(ChainICMPv6), ir.Proto{Proto: ir.ProtoICMPv6})))
	}
	if p.DHCP {
		appendRules(in, fam(ir.IPv4, rule(ir.KindService, "DHCP", ir.VAccept, ir.Proto{Proto: ir.ProtoUDP},
			ir.SPort{Ports: []ir.PortRange{{From: 67, To: 68}}}, ir.DPort{Ports: []ir.PortRange{{From: 67, To: 68}}})))
		if c.rs.Families.Has(ir.IPv6) {
			appendRules(in, fam(ir.IPv6, rule(ir.KindService, "DHCPv6 client", ir.VAccept, ir.Proto{Proto: ir.ProtoUDP},
				ir.SPort{Ports: []ir.PortRange{{From: 547, To: 547}}}, ir.DPort{Ports: []ir.PortRange{{From: 546, To: 546}}})))
		}
	}
	appendRules(in, c.srcRules(ir.KindTrusted, c.trustAll, false, "trusted network", ir.VAccept)...)
	if len(sipUDP)+len(rtp) > 0 {
		appendRules(in, c.srcRules(ir.KindTrusted, c.trustSIP, false, "trusted for SIP", ir.VAccept, ir.Proto{Proto: ir.ProtoUDP}, ir.DPort{Ports: append(append([]ir.PortRange(nil), sipUDP...), rtp...)})...)
	}
	if len(sipTCP) > 0 {
		appendRules(in, c.srcRules(ir.KindTrusted, c.trustSIP, false, "trusted for SIP", ir.VAccept, ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: sipTCP})...)
	}
	for _, ifc := range p.Interfaces.Public {
		appendRules(in, rule(ir.KindDispatch, "anti-spoofing on "+ifc, ir.JumpTo(ChainSpoof), ir.InIface{Name: ifc}))
	}
	if len(p.SSH.Ports) > 0 {
		appendRules(in, rule(ir.KindSSH, "SSH", ir.VAccept, ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: ports(p.SSH.Ports)}))
	}
	if len(p.Extra.TCP) > 0 {
		appendRules(in, rule(ir.KindService, "accepted TCP services", ir.VAccept, ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: ports(p.Extra.TCP)}))
	}
	if len(p.Extra.UDP) > 0 {
		appendRules(in, rule(ir.KindService, "accepted UDP services", ir.VAccept, ir.Proto{Proto: ir.ProtoUDP}, ir.DPort{Ports: ports(p.Extra.UDP)}))
	}
	if len(p.Traps.Ports) > 0 {
		appendRules(in, rule(ir.KindDispatch, "trap ports (never for trusted or allowed sources)", ir.JumpTo(ChainTraps), c.untrusted()...))
	}
	appendRules(in, rule(ir.KindDispatch, "SIP and RTP", ir.JumpTo(ChainSIPIn)))
	if p.Log.Drops.Count > 0 {
		appendRules(in, &ir.Rule{Matches: []ir.Match{ir.Limit{Rate: p.Log.Drops.Count, Per: p.Log.Drops.Per.Duration, Burst: 5}},
			Stmts: []ir.Stmt{ir.Log{Prefix: p.Log.Prefix}}, Comment: "log what is dropped", Kind: ir.KindLog})
	}

	if knocks && len(sipTCP) > 0 {
		k := c.chain(ir.Filter, ChainTCPKnock, "", ir.Verdict{})
		// Segments too short to hold a SIP request (the handshake's last
		// ACK, bare ACKs, FIN, RST) pass: only data waits for the knock.
		appendRules(k, fam(ir.IPv4, rule(ir.KindSIP, "no SIP data", ir.VReturn, ir.Length{Min: 0, Max: 20 + 60})))
		if c.rs.Families.Has(ir.IPv6) {
			appendRules(k, fam(ir.IPv6, rule(ir.KindSIP, "no SIP data", ir.VReturn, ir.Length{Min: 0, Max: 40 + 60})))
		}
		appendRules(k,
			rule(ir.KindAdmitted, "admitted", ir.VReturn, ir.InSet{Set: SetAdmitted}),
			rule(ir.KindAdmitted, "allowed", ir.VReturn, ir.InSet{Set: SetAllowed}))
		if c.nft() {
			appendRules(k, rule(ir.KindAdmitted, "allowed network", ir.VReturn, ir.InSet{Set: SetAllowedNet}))
		}
		appendRules(k, rule(ir.KindTrusted, "trusted", ir.VReturn, ir.InSet{Set: SetTrusted}))
		if r := c.budgetOver(); r != nil {
			appendRules(k, r, c.budgetWithin(ir.VReturn))
		}
		appendRules(k, rule(ir.KindNoKnock, "no knock yet", ir.VDrop))
	}
	ban := c.chain(ir.Filter, ChainTrapBan, "", ir.Verdict{})
	appendRules(ban,
		&ir.Rule{Stmts: []ir.Stmt{ir.AddToSet{Set: SetTrapped}}, Comment: "ban from every port (refreshed while it keeps trying)", Kind: ir.KindTrapBan},
		rule(ir.KindTrapBan, "drop", ir.VDrop))

	c.icmp()
	c.spoof()
	c.traps()
	c.sipIn(sipUDP, sipTCP, rtp)

	if p.Defaults.Forward != "accept" {
		c.chain(ir.Filter, ChainForward, ir.Forward, verdictOf(p.Defaults.Forward))
	}
	if p.Defaults.Output != "accept" {
		out := c.chain(ir.Filter, ChainOutput, ir.Output, verdictOf(p.Defaults.Output))
		appendRules(out,
			rule(ir.KindConntrack, "established flows", ir.VAccept, ir.CTState{States: ir.CTEstablished | ir.CTRelated}),
			rule(ir.KindSSH, "SSH replies", ir.VAccept, ir.Proto{Proto: ir.ProtoTCP}, ir.SPort{Ports: ports(p.SSH.Ports)}))
	}
}

func verdictOf(s string) ir.Verdict {
	if s == "accept" {
		return ir.VAccept
	}
	return ir.VDrop
}

func (c *compiler) icmp() {
	ch := c.chain(ir.Filter, ChainICMP, "", ir.Verdict{})
	if c.p.ICMP.DropFragments {
		appendRules(ch, fam(ir.IPv4, rule(ir.KindICMP, "fragmented ICMP", ir.VDrop, ir.Fragment{})))
	}
	for _, t := range c.p.ICMP.Types {
		appendRules(ch, fam(ir.IPv4, rule(ir.KindICMP, fmt.Sprintf("ICMP type %d", t), ir.VAccept, ir.Proto{Proto: ir.ProtoICMP}, ir.ICMPType{Type: uint8(t)})))
	}
	appendRules(ch, fam(ir.IPv4, rule(ir.KindICMP, "other ICMP", ir.VDrop)))
	if !c.rs.Families.Has(ir.IPv6) {
		return
	}
	ch6 := c.chain(ir.Filter, ChainICMPv6, "", ir.Verdict{})
	types := map[int]bool{}
	for _, t := range IPv6NeededICMP {
		types[t] = true
	}
	for _, t := range c.p.ICMP.IPv6Types {
		types[t] = true
	}
	sorted := make([]int, 0, len(types))
	for t := range types {
		sorted = append(sorted, t)
	}
	sort.Ints(sorted)
	for _, t := range sorted {
		appendRules(ch6, fam(ir.IPv6, rule(ir.KindICMP, fmt.Sprintf("ICMPv6 type %d", t), ir.VAccept, ir.Proto{Proto: ir.ProtoICMPv6}, ir.ICMPType{Type: uint8(t)})))
	}
	appendRules(ch6, fam(ir.IPv6, rule(ir.KindICMP, "other ICMPv6", ir.VDrop)))
}

// badFlags are the article's seven bad TCP flag combinations (mask, value).
var badFlags = []struct {
	name       string
	mask, comp uint8
}{
	{"no flags", ir.ALL, 0},
	{"all flags", ir.ALL, ir.ALL},
	{"FIN,URG,PSH", ir.ALL, ir.FIN | ir.URG | ir.PSH},
	{"SYN,RST,ACK,FIN,URG", ir.ALL, ir.SYN | ir.RST | ir.ACK | ir.FIN | ir.URG},
	{"SYN,RST", ir.SYN | ir.RST, ir.SYN | ir.RST},
	{"SYN,FIN", ir.SYN | ir.FIN, ir.SYN | ir.FIN},
	{"FIN alone", ir.ALL, ir.FIN},
}

func (c *compiler) spoof() {
	p := c.p
	ch := c.chain(ir.Filter, ChainSpoof, "", ir.Verdict{})
	appendRules(ch, c.srcRules(ir.KindSpoofing, p.Bogons(), false, "bogon source", ir.VDrop)...)
	var dsts []policy.Prefix = p.Spoofing.BadDestinations
	appendRules(ch, c.srcRules(ir.KindSpoofing, prefixes(dsts), true, "broadcast, multicast or loopback destination", ir.VDrop)...)
	tcp := ir.Proto{Proto: ir.ProtoTCP}
	if p.Spoofing.BadTCPFlags {
		for _, f := range badFlags {
			appendRules(ch, rule(ir.KindSpoofing, "bad TCP flags: "+f.name, ir.VDrop, tcp, ir.TCPFlags{Mask: f.mask, Comp: f.comp}))
		}
	}
	if p.Spoofing.SynAckReset {
		appendRules(ch, rule(ir.KindSpoofing, "new SYN,ACK: someone spoofs our address", ir.Verdict{Kind: ir.RejectTCPReset}, tcp,
			ir.TCPFlags{Mask: ir.SYN | ir.ACK, Comp: ir.SYN | ir.ACK}, ir.CTState{States: ir.CTNew}))
	}
	syn := ir.TCPFlags{Mask: ir.FIN | ir.SYN | ir.RST | ir.ACK, Comp: ir.SYN}
	if p.Spoofing.NewWithoutSyn {
		notSyn := syn
		notSyn.Neg = true
		appendRules(ch, rule(ir.KindSpoofing, "new TCP without SYN", ir.VDrop, tcp, notSyn, ir.CTState{States: ir.CTNew}))
	}
	if p.Spoofing.EmptyUDP {
		appendRules(ch, fam(ir.IPv4, rule(ir.KindSpoofing, "empty UDP", ir.VDrop, ir.Proto{Proto: ir.ProtoUDP}, ir.Length{Min: 0, Max: 28})))
		if c.rs.Families.Has(ir.IPv6) {
			appendRules(ch, fam(ir.IPv6, rule(ir.KindSpoofing, "empty UDP", ir.VDrop, ir.Proto{Proto: ir.ProtoUDP}, ir.Length{Min: 0, Max: 48})))
		}
	}
	if r := p.Spoofing.SynRate; r.Count > 0 {
		appendRules(ch, rule(ir.KindRateLimit, fmt.Sprintf("over %d new TCP connections per %s", r.Count, seconds(r.Per.Duration)), ir.VDrop, tcp, syn,
			ir.SourceRateOver{Name: "sipwall-syn", Rate: r.Count, Per: r.Per.Duration, Burst: r.Count, Size: p.Lists.Capacity}))
	}
}

func (c *compiler) traps() {
	if len(c.p.Traps.Ports) == 0 {
		return
	}
	ch := c.chain(ir.Filter, ChainTraps, "", ir.Verdict{})
	for _, t := range c.p.Traps.Ports {
		m := []ir.Match{ir.Proto{Proto: ir.ProtoTCP}, ir.DPort{Ports: []ir.PortRange{{From: uint16(t.Port), To: uint16(t.Port)}}}}
		switch t.Action {
		case policy.TrapBan:
			appendRules(ch, rule(ir.KindTrap, fmt.Sprintf("trap port %d: ban for %s", t.Port, c.p.Traps.BanFor), ir.JumpTo(ChainTrapBan), m...))
		case policy.TrapDrop:
			appendRules(ch, rule(ir.KindTrap, fmt.Sprintf("port %d: drop", t.Port), ir.VDrop, m...))
		case policy.TrapAccept:
			appendRules(ch, rule(ir.KindService, fmt.Sprintf("port %d: accept", t.Port), ir.VAccept, m...))
		}
	}
}

// sipIn is the article's ASIP chain.
func (c *compiler) sipIn(sipUDP, sipTCP, rtp []ir.PortRange) {
	ch := c.chain(ir.Filter, ChainSIPIn, "", ir.Verdict{})
	udp, tcp := ir.Proto{Proto: ir.ProtoUDP}, ir.Proto{Proto: ir.ProtoTCP}
	if len(sipTCP) > 0 {
		comment := "SIP over TCP"
		if c.knocks() {
			comment = "TCP handshake: data waits for the knock"
		}
		appendRules(ch, rule(ir.KindSIP, comment, ir.VAccept, tcp, ir.DPort{Ports: sipTCP}))
	}
	if len(sipUDP) > 0 {
		if c.knocks() {
			appendRules(ch,
				rule(ir.KindAdmitted, "SIP from admitted sources", ir.VAccept, udp, ir.DPort{Ports: sipUDP}, ir.InSet{Set: SetAdmitted}),
				rule(ir.KindAdmitted, "SIP from allowed sources", ir.VAccept, udp, ir.DPort{Ports: sipUDP}, ir.InSet{Set: SetAllowed}))
			if c.nft() {
				appendRules(ch, rule(ir.KindAdmitted, "SIP from allowed networks", ir.VAccept, udp, ir.DPort{Ports: sipUDP}, ir.InSet{Set: SetAllowedNet}))
			}
			// The raw table dropped what is over the budget.
			if r := c.budgetWithin(ir.VAccept, udp, ir.DPort{Ports: sipUDP}); r != nil {
				appendRules(ch, r)
			}
			appendRules(ch, rule(ir.KindNoKnock, "SIP without the knock", ir.VDrop, udp, ir.DPort{Ports: sipUDP}))
		} else {
			appendRules(ch, rule(ir.KindSIP, "SIP over UDP", ir.VAccept, udp, ir.DPort{Ports: sipUDP}))
		}
	}
	if len(rtp) > 0 {
		appendRules(ch, rule(ir.KindRTP, "RTP", ir.VAccept, udp, ir.DPort{Ports: rtp}))
	}
}

// budgetOver drops the SIP of a source that has not knocked beyond
// sip.unknown_budget packets per period (one bucket per source for UDP
// packets and TCP data segments); budgetWithin lets the rest through with
// verdict v. A phone that cannot knock registers within the budget and
// guard admits it when Asterisk reports the registration; a scanner's
// flood is cut at the budget, and its failures ban it (guard). Nil without
// a budget.
func (c *compiler) budgetOver(ms ...ir.Match) *ir.Rule {
	b := c.p.SIP.UnknownBudget
	if b.Count == 0 || !c.knocks() {
		return nil
	}
	over := ir.SourceRateOver{Name: "sipwall-budget", Rate: b.Count, Per: b.Per.Duration, Burst: b.Count, Size: c.p.Lists.Capacity}
	return rule(ir.KindBudget, "no knock: over the budget of "+c.budgetText(), ir.VDrop, append(append([]ir.Match(nil), ms...), over)...)
}

func (c *compiler) budgetWithin(v ir.Verdict, ms ...ir.Match) *ir.Rule {
	if c.p.SIP.UnknownBudget.Count == 0 || !c.knocks() {
		return nil
	}
	return rule(ir.KindBudget, "no knock: within the budget of "+c.budgetText(), v, ms...)
}

func (c *compiler) budgetText() string {
	b := c.p.SIP.UnknownBudget
	return fmt.Sprintf("%d per %s", b.Count, seconds(b.Per.Duration))
}

// notes say plainly what is enforced where.
func (c *compiler) notes() {
	add := func(format string, args ...any) { c.rs.Notes = append(c.rs.Notes, fmt.Sprintf(format, args...)) }
	p := c.p
	if c.nft() {
		switch p.SIP.Mode {
		case policy.ModeHostname, policy.ModeUserAgent:
			until := "only sources in the allowed set and trusted networks reach SIP over UDP, and TCP SIP carries no data from others"
			if p.SIP.UnknownBudget.Count > 0 {
				until = "sources that have not knocked get only their budget (sip.unknown_budget), and scanners within it are not recognised"
			}
			add("nftables cannot search packets for text: the %s knock and the scanner signatures are checked by `sipwall guard`, which reads SIP packets of unknown sources from nflog group %d and fills the admitted and scanners sets. Until guard runs, %s.", p.SIP.Mode, InspectGroup, until)
		default:
			add("nftables cannot search packets for text: scanner signatures are checked by `sipwall guard` (nflog group %d); without it, scanners are not recognised by their user-agent.", InspectGroup)
		}
		add("REGISTER and INVITE limits: enforced in the kernel, on the first bytes of the UDP or TCP payload (the request line).")
	} else {
		add("Scanner signatures, the %s knock and the REGISTER/INVITE limits: enforced in the kernel (xt_string in the raw table).", p.SIP.Mode)
		add("Request-line limits count a method only where its request line starts the payload (UDP: right after an option-less IP header; TCP: within the 20-60 byte header window).")
	}
	if len(p.SIP.TLSPorts) > 0 && c.knocks() && p.SIP.Mode == policy.ModeHostname {
		add("TLS ports: the knock is the hostname in the TLS ClientHello (SNI); signatures and method limits cannot see inside TLS.")
	}
	add("Trusted networks (trusted.*) and the allowed list pass before the scanner signatures and the method limits and never enter the scanners or trapped lists: whatever their packets carry (a caller's display name relayed by a trunk, a chat message), they are not banned or limited. Only a ban by hand (sipwall ban) drops them.")
	if c.knocks() {
		add("Admitted sources (they showed the %s knock, which a scanner never has) skip the scanner signatures: a signature in a message body or a display name does not ban a phone; the method limits still apply to them. A packet from an unknown source that carries a signature bans it, even with the knock.", p.SIP.Mode)
	} else {
		add("Mode %s admits no one by a knock: a scanner signature anywhere in a SIP packet from a source that is neither trusted nor allowed bans it, a phone's chat message included. Put trunks in trusted and your own phones' networks in trusted.sip or the allowed list.", p.SIP.Mode)
	}
	if a := p.SIP.Answers; a.Enabled() {
		add("Bans by answers (sip.answers): the failure answers the host sends from its SIP UDP and TCP ports (401/407/403: %s; 404/484: %s) are counted per remote address in the raw table's OUTPUT, where the status line starts the payload; an address over the rate is banned from every port for %s (list %s). Trusted and allowed addresses are never counted; phones behind one NAT address share a count. TLS hides the answers.",
			answerRate(a.AuthFailures), answerRate(a.NotFound), a.BanFor, SetAnswered)
	}
	if b := p.SIP.UnknownBudget; b.Count > 0 && c.knocks() {
		add("Sources that have not knocked get a budget of %d SIP packets per %s each (sip.unknown_budget), UDP and TCP data together; beyond it their SIP is dropped. Scanner signatures still ban them; guard admits them when Asterisk reports their registration or authentication, and bans them for failures.", b.Count, seconds(b.Per.Duration))
	}
	add("Per-source rates are token buckets: N per period, at most N at once; lists hold up to %d entries and never evict a live one.", p.Lists.Capacity)
	if !p.IPv6 {
		add("IPv6 is left alone by this policy (ipv6: false).")
	}
}
