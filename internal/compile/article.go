package compile

import (
	"fmt"
	"net/netip"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// Article compiles the policy into the article's own ruleset, rule for rule:
// its chain names (ICMPALL, IPSPF, DPTS, RLMSET, ASIP; BADSIP, TCPSIP, UDPSIP,
// NEWSIP), its xt_recent lists (MYSIP, BADSIP, RLM, INSYN, SIP_R, SIP_I) with
// their 100-address limit, and IPv4 only. The policy supplies the values the
// article asks its readers to fill in (SSH port, hostname, interfaces, bogon
// exemptions, ports). Lines the article lost in copying (default policies,
// bogon list, the jumps to DPTS and ASIP) are reconstructed from its text.
func Article(p *policy.Policy) (*ir.Ruleset, error) {
	rs := &ir.Ruleset{Profile: "article", Families: ir.IPv4}
	ch := func(t ir.Table, name string, hook ir.Hook, pol ir.Verdict) *ir.Chain {
		c := &ir.Chain{Table: t, Name: name, Hook: hook, Policy: pol, Builtin: hook != ""}
		rs.Chains = append(rs.Chains, c)
		return c
	}
	r := func(k ir.Kind, v ir.Verdict, ms ...ir.Match) *ir.Rule {
		return &ir.Rule{Family: ir.IPv4, Matches: ms, Verdict: v, Kind: k}
	}
	tcp, udp := ir.Proto{Proto: ir.ProtoTCP}, ir.Proto{Proto: ir.ProtoUDP}
	sipTCP := ir.DPort{Ports: ports(p.SIPTCPPorts())}
	sipUDP := ir.DPort{Ports: ports(p.SIP.UDPPorts)}
	mode := p.SIP.Mode
	knock := mode == policy.ModeHostname || mode == policy.ModeUserAgent

	// raw table.
	pre := ch(ir.Raw, "PREROUTING", ir.Prerouting, ir.VAccept)
	badsip := ch(ir.Raw, "BADSIP", "", ir.Verdict{})
	tcpsip := ch(ir.Raw, "TCPSIP", "", ir.Verdict{})
	udpsip := ch(ir.Raw, "UDPSIP", "", ir.Verdict{})
	var keys []string
	switch mode {
	case policy.ModeHostname:
		keys = p.SIP.Hostnames
	case policy.ModeUserAgent:
		keys = p.SIP.UserAgents
	}
	for _, ifc := range p.Interfaces.Public {
		eth := ir.InIface{Name: ifc}
		if knock {
			appendRules(pre, r(ir.KindAdmitted, ir.VAccept, eth, ir.Recent{Name: "MYSIP", Op: ir.RecentUpdate}))
			for _, k := range keys {
				appendRules(pre,
					r(ir.KindKnock, ir.JumpTo("NEWSIP"), eth, tcp, sipTCP, ir.String{Pattern: k, IgnoreCase: true, To: 65535}),
					r(ir.KindKnock, ir.JumpTo("NEWSIP"), eth, udp, sipUDP, ir.String{Pattern: k, IgnoreCase: true, To: 1500}))
			}
		}
		appendRules(pre,
			r(ir.KindScannerBanned, ir.VDrop, eth, ir.Recent{Name: "BADSIP", Op: ir.RecentUpdate}),
			r(ir.KindDispatch, ir.JumpTo("TCPSIP"), eth, tcp, sipTCP),
			r(ir.KindDispatch, ir.JumpTo("UDPSIP"), eth, udp, sipUDP))
	}
	for _, s := range p.SIP.Scanners.Signatures {
		appendRules(tcpsip, r(ir.KindScannerSignature, ir.JumpTo("BADSIP"), ir.String{Pattern: s.Match, IgnoreCase: s.IgnoreCase, To: 65535}))
		appendRules(udpsip, r(ir.KindScannerSignature, ir.JumpTo("BADSIP"), ir.String{Pattern: s.Match, IgnoreCase: s.IgnoreCase, To: 1500}))
	}
	for _, lim := range []struct {
		method, list string
		rate         policy.Rate
	}{{"REGISTER", "SIP_R", p.SIP.RateLimits.Register}, {"INVITE", "SIP_I", p.SIP.RateLimits.Invite}} {
		if lim.rate.Count == 0 {
			continue
		}
		if lim.rate.Count > 20 {
			return nil, fmt.Errorf("compile article: %s limit %d: xt_recent counts at most 20 packets per address (ip_pkt_list_tot)", lim.method, lim.rate.Count)
		}
		s := lim.method + " sip:"
		for _, c := range []struct {
			ch *ir.Chain
			to uint16
		}{{tcpsip, 65535}, {udpsip, 1500}} {
			appendRules(c.ch,
				r(ir.KindRateLimit, ir.Verdict{}, ir.String{Pattern: s, To: c.to}, ir.Recent{Name: lim.list, Op: ir.RecentSet}),
				r(ir.KindRateLimit, ir.VDrop, ir.String{Pattern: s, To: c.to}, ir.Recent{Name: lim.list, Op: ir.RecentUpdate, Seconds: lim.rate.Per.Seconds(), Hitcount: lim.rate.Count, RTTL: true}))
		}
	}
	appendRules(badsip, r(ir.KindScannerBan, ir.VDrop, ir.Recent{Name: "BADSIP", Op: ir.RecentSet}))
	if knock {
		newsip := ch(ir.Raw, "NEWSIP", "", ir.Verdict{})
		appendRules(newsip, r(ir.KindKnock, ir.VAccept, ir.Recent{Name: "MYSIP", Op: ir.RecentSet}))
	}
	if mode == policy.ModeScannersOnly {
		rs.Notes = append(rs.Notes, "Article profile, Option 1: only the raw table; append it to your existing firewall, which must close every other port.")
		return rs, nil
	}

	// filter table.
	in := ch(ir.Filter, "INPUT", ir.Input, verdictOf(p.Defaults.Input))
	ch(ir.Filter, "FORWARD", ir.Forward, verdictOf(p.Defaults.Forward))
	ch(ir.Filter, "OUTPUT", ir.Output, verdictOf(p.Defaults.Output))
	icmpall := ch(ir.Filter, "ICMPALL", "", ir.Verdict{})
	ipspf := ch(ir.Filter, "IPSPF", "", ir.Verdict{})
	asip := ch(ir.Filter, "ASIP", "", ir.Verdict{})
	dpts := ch(ir.Filter, "DPTS", "", ir.Verdict{})
	rlmset := ch(ir.Filter, "RLMSET", "", ir.Verdict{})

	if knock {
		appendRules(in, r(ir.KindNoKnock, ir.VDrop, tcp, sipTCP, ir.CTState{States: ir.CTRelated | ir.CTEstablished}, ir.Recent{Name: "MYSIP", Op: ir.RecentRCheck, Neg: true}))
	}
	appendRules(in,
		r(ir.KindConntrack, ir.VDrop, ir.CTState{States: ir.CTInvalid}),
		r(ir.KindConntrack, ir.VAccept, ir.CTState{States: ir.CTRelated | ir.CTEstablished}),
		r(ir.KindLoopback, ir.VAccept, ir.InIface{Name: "lo"}),
		r(ir.KindTrapped, ir.VDrop, ir.Recent{Name: "RLM", Op: ir.RecentUpdate, Seconds: p.Traps.BanFor.Seconds(), Hitcount: 1}),
		r(ir.KindDispatch, ir.JumpTo("ICMPALL"), ir.Proto{Proto: ir.ProtoICMP}))
	if p.DHCP {
		appendRules(in, r(ir.KindService, ir.VAccept, udp, ir.SPort{Ports: []ir.PortRange{{From: 67, To: 68}}}, ir.DPort{Ports: []ir.PortRange{{From: 67, To: 68}}}))
	}
	for _, ifc := range p.Interfaces.Public {
		appendRules(in, r(ir.KindDispatch, ir.JumpTo("IPSPF"), ir.InIface{Name: ifc}))
	}
	for _, sp := range p.SSH.Ports {
		appendRules(in, r(ir.KindSSH, ir.VAccept, tcp, ir.DPort{Ports: ports([]policy.Port{sp})}))
	}
	appendRules(in, r(ir.KindDispatch, ir.JumpTo("DPTS")), r(ir.KindDispatch, ir.JumpTo("ASIP")))
	if p.Log.Drops.Count > 0 {
		appendRules(in, &ir.Rule{Family: ir.IPv4, Matches: []ir.Match{ir.Limit{Rate: p.Log.Drops.Count, Per: p.Log.Drops.Per.Duration, Burst: 5}}, Stmts: []ir.Stmt{ir.Log{Prefix: p.Log.Prefix}}, Kind: ir.KindLog})
	}

	if p.ICMP.DropFragments {
		appendRules(icmpall, r(ir.KindICMP, ir.VDrop, ir.Proto{Proto: ir.ProtoICMP}, ir.Fragment{}))
	}
	for _, t := range p.ICMP.Types {
		appendRules(icmpall, r(ir.KindICMP, ir.VAccept, ir.Proto{Proto: ir.ProtoICMP}, ir.ICMPType{Type: uint8(t)}))
	}
	appendRules(icmpall, r(ir.KindICMP, ir.VDrop, ir.Proto{Proto: ir.ProtoICMP}))

	for _, b := range p.Bogons() {
		if b.Addr().Is4() {
			appendRules(ipspf, r(ir.KindSpoofing, ir.VDrop, ir.Src{Prefixes: []netip.Prefix{b}}))
		}
	}
	for _, d := range p.Spoofing.BadDestinations {
		if d.Addr().Is4() {
			appendRules(ipspf, r(ir.KindSpoofing, ir.VDrop, ir.Dst{Prefixes: []netip.Prefix{d.Prefix}}))
		}
	}
	for _, f := range badFlags {
		appendRules(ipspf, r(ir.KindSpoofing, ir.VDrop, tcp, ir.TCPFlags{Mask: f.mask, Comp: f.comp}))
	}
	syn := ir.TCPFlags{Mask: ir.FIN | ir.SYN | ir.RST | ir.ACK, Comp: ir.SYN}
	notSyn := syn
	notSyn.Neg = true
	appendRules(ipspf,
		r(ir.KindSpoofing, ir.Verdict{Kind: ir.RejectTCPReset}, tcp, ir.TCPFlags{Mask: ir.SYN | ir.ACK, Comp: ir.SYN | ir.ACK}, ir.CTState{States: ir.CTNew}),
		r(ir.KindSpoofing, ir.VDrop, tcp, notSyn, ir.CTState{States: ir.CTNew}),
		r(ir.KindSpoofing, ir.VDrop, udp, ir.Length{Min: 0, Max: 28}))
	if sr := p.Spoofing.SynRate; sr.Count > 0 {
		if sr.Count+1 > 20 {
			return nil, fmt.Errorf("compile article: syn_rate %d: xt_recent counts at most 20 packets per address", sr.Count)
		}
		appendRules(ipspf,
			r(ir.KindRateLimit, ir.VDrop, tcp, syn, ir.Recent{Name: "INSYN", Op: ir.RecentUpdate, Seconds: sr.Per.Seconds(), Hitcount: sr.Count + 1}),
			r(ir.KindRateLimit, ir.VReturn, tcp, syn, ir.Recent{Name: "INSYN", Op: ir.RecentSet}))
	}

	for _, t := range p.Traps.Ports {
		m := []ir.Match{tcp, ir.DPort{Ports: []ir.PortRange{{From: uint16(t.Port), To: uint16(t.Port)}}}}
		switch t.Action {
		case policy.TrapBan:
			appendRules(dpts, r(ir.KindTrap, ir.JumpTo("RLMSET"), m...))
		case policy.TrapDrop:
			appendRules(dpts, r(ir.KindTrap, ir.VDrop, m...))
		case policy.TrapAccept:
			appendRules(dpts, r(ir.KindService, ir.VAccept, m...))
		}
	}
	appendRules(rlmset, r(ir.KindTrapBan, ir.VDrop, ir.Recent{Name: "RLM", Op: ir.RecentSet}))

	appendRules(asip, r(ir.KindSIP, ir.VAccept, tcp, sipTCP))
	if knock {
		appendRules(asip,
			r(ir.KindAdmitted, ir.VAccept, udp, sipUDP, ir.Recent{Name: "MYSIP", Op: ir.RecentUpdate}),
			r(ir.KindNoKnock, ir.VDrop, udp, sipUDP))
	} else {
		appendRules(asip, r(ir.KindSIP, ir.VAccept, udp, sipUDP))
	}
	appendRules(asip, r(ir.KindRTP, ir.VAccept, udp, ir.DPort{Ports: ports(p.SIP.RTPPorts)}))
	rs.Notes = append(rs.Notes,
		"Article profile: xt_recent lists hold 100 addresses each (ip_list_tot) and forget the oldest, so 100 spoofed sources flush a ban; lists are lost at reboot.",
		"Article profile: IPv4 only; IPv6 is left wide open.")
	return rs, nil
}
