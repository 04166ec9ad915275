package compile

import (
	"fmt"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// AuthFailureCodes and NotFoundCodes are the SIP status codes counted by
// sip.answers.auth_failures and sip.answers.not_found.
var (
	AuthFailureCodes = []int{401, 403, 407}
	NotFoundCodes    = []int{404, 484}
)

// answers counts the failure answers the host sends from its SIP ports,
// per remote address, and bans an address that collects more than the
// policy's rate of them (sip.answers). The raw table's OUTPUT sees every
// answer before conntrack; an answer counts only where its status line
// starts the UDP or TCP payload. Trusted and allowed addresses are never
// counted; the ban itself is dropped in sipwall-public, after they pass.
func (c *compiler) answers() {
	a := c.p.SIP.Answers
	if !a.Enabled() {
		return
	}
	// One test of the first bytes sends the 4xx answers on: the other
	// answers (1xx, 2xx: most of what a PBX sends) and requests cost a
	// port match and one short string comparison.
	out := c.chain(ir.Raw, ChainAnswersOut, ir.Output, ir.VAccept)
	const failure = "SIP/2.0 4"
	for _, t := range []struct {
		proto uint8
		ps    []policy.Port
		what  string
	}{{ir.ProtoUDP, c.p.SIP.UDPPorts, "UDP"}, {ir.ProtoTCP, c.p.SIP.TCPPorts, "TCP"}} {
		if len(t.ps) == 0 {
			continue
		}
		r := rule(ir.KindDispatch, "4xx answers from SIP over "+t.what, ir.JumpTo(ChainAnswer), ir.Proto{Proto: t.proto}, ir.SPort{Ports: ports(t.ps)})
		c.payloadStart(out, failure, r, t.proto)
	}
	ch := c.chain(ir.Raw, ChainAnswer, "", ir.Verdict{})
	appendRules(ch,
		rule(ir.KindExempt, "to trusted: not counted", ir.VReturn, ir.InSet{Set: SetTrusted, Dir: ir.DstAddr}),
		rule(ir.KindExempt, "to allowed: not counted", ir.VReturn, ir.InSet{Set: SetAllowed, Dir: ir.DstAddr}))
	if c.nft() {
		appendRules(ch, rule(ir.KindExempt, "to an allowed network: not counted", ir.VReturn, ir.InSet{Set: SetAllowedNet, Dir: ir.DstAddr}))
	}
	c.answerClass(ch, ChainAuthFail, "sipwall-auth-failures", "auth failure", AuthFailureCodes, a.AuthFailures)
	c.answerClass(ch, ChainNotFound, "sipwall-not-found", "not found", NotFoundCodes, a.NotFound)
}

// answerClass sends the answers of codes to a chain of their own, which
// bans the remote address once it goes over the class's token bucket.
func (c *compiler) answerClass(ch *ir.Chain, chain, bucket, what string, codes []int, r policy.Rate) {
	if r.Count == 0 {
		return
	}
	for _, code := range codes {
		needle := fmt.Sprintf("SIP/2.0 %d ", code)
		c.payloadStart(ch, needle, rule(ir.KindAnswer, fmt.Sprintf("%s: %d sent", what, code), ir.JumpTo(chain)), 0)
	}
	cc := c.chain(ir.Raw, chain, "", ir.Verdict{})
	over := ir.SourceRateOver{Name: bucket, Rate: r.Count, Per: r.Per.Duration, Burst: r.Count, Size: c.p.Lists.Capacity, Dir: ir.DstAddr}
	appendRules(cc, &ir.Rule{
		Matches: []ir.Match{over},
		Stmts:   []ir.Stmt{ir.AddToSet{Set: SetAnswered, Dir: ir.DstAddr}},
		Comment: fmt.Sprintf("over %d %s answers per %s: ban for %s", r.Count, what, seconds(r.Per.Duration), c.p.SIP.Answers.BanFor),
		Kind:    ir.KindAnswerBan,
	})
}

// payloadStart appends r to ch once per family and transport (proto, or
// both UDP and TCP when 0), matching needle where it starts the UDP or TCP
// payload: nftables reads the payload itself; xt_string counts offsets
// from the network header, so the window is right after an option-less IP
// header and the UDP header, or anywhere a TCP header of 20 to 60 bytes
// can end. r must not have a Proto match of its own with proto 0.
func (c *compiler) payloadStart(ch *ir.Chain, needle string, r *ir.Rule, proto uint8) {
	if c.nft() {
		x := *r
		x.Matches = append(append([]ir.Match(nil), r.Matches...), ir.Payload{Offset: 0, Bytes: needle})
		appendRules(ch, &x)
		return
	}
	n := uint16(len(needle))
	for _, f := range []struct {
		fam      ir.Family
		ip       uint16
		proto    uint8
		min, max uint16
	}{
		{ir.IPv4, 20, ir.ProtoUDP, 8, 8}, {ir.IPv4, 20, ir.ProtoTCP, 20, 60},
		{ir.IPv6, 40, ir.ProtoUDP, 8, 8}, {ir.IPv6, 40, ir.ProtoTCP, 20, 60},
	} {
		if !c.rs.Families.Has(f.fam) || (proto != 0 && proto != f.proto) {
			continue
		}
		x := *r
		x.Family = f.fam
		x.Matches = append([]ir.Match(nil), r.Matches...)
		if proto == 0 {
			x.Matches = append(x.Matches, ir.Proto{Proto: f.proto})
		}
		x.Matches = append(x.Matches, ir.String{Pattern: needle, From: f.ip + f.min, To: f.ip + f.max + n})
		appendRules(ch, &x)
	}
}

// answerRate describes a class's rate for the notes.
func answerRate(r policy.Rate) string {
	if r.Count == 0 {
		return "not counted"
	}
	return fmt.Sprintf("over %d per %s", r.Count, seconds(r.Per.Duration))
}
