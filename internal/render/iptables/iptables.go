// Package iptables renders a ruleset as input for iptables-restore,
// ip6tables-restore and ipset restore: the files Debian's iptables-persistent
// and ipset-persistent load at boot (rules.v4, rules.v6, ipsets).
package iptables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// Output is a rendered ruleset.
type Output struct {
	V4     string // iptables-restore input
	V6     string // ip6tables-restore input ("" when IPv6 is not protected)
	IPSets string // ipset restore input ("" when no set is used)
}

// SetName is the ipset name of set name for family f.
func SetName(name string, f ir.Family) string {
	if f == ir.IPv6 {
		return "sipwall-" + name + "6"
	}
	return "sipwall-" + name + "4"
}

// builtin is the iptables chain a hook attaches to.
var builtin = map[ir.Hook]string{ir.Prerouting: "PREROUTING", ir.Input: "INPUT", ir.Forward: "FORWARD", ir.Output: "OUTPUT"}

// Render renders rs: the files are the text of its listing.
func Render(rs *ir.Ruleset) (*Output, error) {
	l, err := List(rs)
	if err != nil {
		return nil, err
	}
	return &Output{V4: l.Text(FileV4), V6: l.Text(FileV6), IPSets: l.Text(FileIPSets)}, nil
}

// The files of the iptables backend.
const (
	FileV4     = "rules.v4"
	FileV6     = "rules.v6"
	FileIPSets = "ipsets"
)

// List renders rs as a listing: the IPv4 rules (rules.v4), the IPv6 rules
// when the ruleset protects IPv6 (rules.v6), then the sets (ipsets). A rule
// on several source or destination prefixes is one entry per prefix, as
// iptables itself would expand "-s a,b"; each built-in chain a sipwall
// chain hooks into gets a jump rule of its own (Kind Dispatch).
func List(rs *ir.Ruleset) (*ir.Listing, error) {
	l := &ir.Listing{}
	if err := listFamily(l, rs, ir.IPv4); err != nil {
		return nil, err
	}
	if rs.Families.Has(ir.IPv6) {
		if err := listFamily(l, rs, ir.IPv6); err != nil {
			return nil, err
		}
	}
	listSets(l, rs)
	return l, nil
}

func listSets(l *ir.Listing, rs *ir.Ruleset) {
	for _, s := range rs.Sets {
		for _, f := range []ir.Family{ir.IPv4, ir.IPv6} {
			if !s.Families.Has(f) || !rs.Families.Has(f) {
				continue
			}
			var b strings.Builder
			family := "inet"
			if f == ir.IPv6 {
				family = "inet6"
			}
			// hash:net holds single addresses and networks alike, so a CIDR
			// ban matches every address inside it.
			// Entries carry comments: the reason of a ban.
			fmt.Fprintf(&b, "create %s hash:net family %s hashsize 1024 maxelem %d timeout %d comment\n",
				SetName(s.Name, f), family, s.Size, int(s.Timeout/time.Second))
			for _, e := range s.Elements {
				if e.Addr().Is4() == (f == ir.IPv4) {
					fmt.Fprintf(&b, "add %s %s timeout 0\n", SetName(s.Name, f), e)
				}
			}
			l.Add(ir.Entry{Kind: ir.EntrySet, File: FileIPSets, Family: f, Text: b.String(), Set: s})
		}
	}
}

func listFamily(l *ir.Listing, rs *ir.Ruleset, f ir.Family) error {
	cmd, file := "iptables-restore", FileV4
	if f == ir.IPv6 {
		cmd, file = "ip6tables-restore", FileV6
	}
	text := func(t ir.Table, s string) {
		l.Add(ir.Entry{Kind: ir.EntryText, File: file, Family: f, Table: t, Text: s})
	}
	text("", fmt.Sprintf("# sipwall %s ruleset (%s): load with %s\n", rs.Profile, f, cmd))
	for _, t := range []ir.Table{ir.Raw, ir.Filter} {
		var chains []*ir.Chain
		for _, c := range rs.Chains {
			if c.Table == t && usedBy(c, f) {
				chains = append(chains, c)
			}
		}
		if len(chains) == 0 {
			continue
		}
		text(t, fmt.Sprintf("*%s\n", t))
		decl := func(name string, h ir.Hook, policy ir.Verdict, s string) {
			l.Add(ir.Entry{Kind: ir.EntryChain, File: file, Family: f, Table: t, Chain: name, Hook: h, Policy: policy, Text: s})
		}
		// Built-in chains first, with their policies.
		for _, h := range []ir.Hook{ir.Prerouting, ir.Input, ir.Forward, ir.Output} {
			for _, c := range chains {
				if c.Hook == h {
					decl(builtin[h], h, c.Policy, fmt.Sprintf(":%s %s [0:0]\n", builtin[h], policyName(c.Policy)))
				}
			}
		}
		for _, c := range chains {
			if !c.Builtin {
				decl(c.Name, "", ir.Verdict{}, fmt.Sprintf(":%s - [0:0]\n", c.Name))
			}
		}
		pos := map[string]int{}
		rule := func(chain, line string, r, from *ir.Rule) {
			pos[chain]++
			l.Add(ir.Entry{Kind: ir.EntryRule, File: file, Family: f, Table: t, Chain: chain, Position: pos[chain],
				Text: line + "\n", Rule: r, From: from})
		}
		for _, c := range chains {
			if c.Hook != "" && !c.Builtin {
				rule(builtin[c.Hook], fmt.Sprintf("-A %s -j %s", builtin[c.Hook], c.Name),
					&ir.Rule{Family: f, Verdict: ir.JumpTo(c.Name), Kind: ir.KindDispatch}, nil)
			}
		}
		for _, c := range chains {
			name := c.Name
			if c.Builtin {
				name = builtin[c.Hook]
			}
			for i, r := range c.Rules {
				if !r.Fam().Has(f) {
					continue
				}
				lines, err := renderRule(name, r, f)
				if err != nil {
					return fmt.Errorf("render iptables: chain %s rule %d (%s): %w", c.Name, i+1, r.Comment, err)
				}
				for _, x := range lines {
					rule(name, x.text, x.rule, r)
				}
			}
		}
		text(t, "COMMIT\n")
	}
	return nil
}

// usedBy reports whether chain c belongs in family f's file: a chain whose
// rules are all for the other family (the ICMPv6 chain in rules.v4) does not.
func usedBy(c *ir.Chain, f ir.Family) bool {
	if len(c.Rules) == 0 {
		return true
	}
	for _, r := range c.Rules {
		if r.Fam().Has(f) {
			return true
		}
	}
	return false
}

func policyName(v ir.Verdict) string {
	if v.Kind == ir.Drop {
		return "DROP"
	}
	return "ACCEPT"
}

// line is one rendered rule: its text and the rule it renders.
type line struct {
	text string
	rule *ir.Rule
}

// renderRule renders one IR rule; a match on several prefixes becomes one
// line per prefix, as iptables itself would expand "-s a,b", each with a
// copy of the rule on its one prefix.
func renderRule(chain string, r *ir.Rule, f ir.Family) ([]line, error) {
	var srcs, dsts []netip.Prefix
	var parts []string
	proto := uint8(0)
	for _, m := range r.Matches {
		if p, ok := m.(ir.Proto); ok {
			proto = p.Proto
		}
	}
	srcNeg, dstNeg := false, false
	srcAt, dstAt := -1, -1 // the address matches' indexes in r.Matches
	for i, m := range r.Matches {
		switch m := m.(type) {
		case ir.Src:
			srcs, srcNeg, srcAt = m.Prefixes, m.Neg, i
			continue
		case ir.Dst:
			dsts, dstNeg, dstAt = m.Prefixes, m.Neg, i
			continue
		}
		s, err := renderMatch(m, f, proto)
		if err != nil {
			return nil, err
		}
		parts = append(parts, s)
	}
	if r.Comment != "" {
		if err := text("comment", r.Comment, 255); err != nil {
			return nil, err
		}
		parts = append(parts, "-m comment --comment "+quote(r.Comment))
	}
	target, err := renderTarget(r, f)
	if err != nil {
		return nil, err
	}
	if len(srcs) > 1 && len(dsts) > 1 {
		return nil, fmt.Errorf("both source and destination lists")
	}
	addr := []string{""}
	var expand []ir.Match // the address match of each line, when expanded
	addrAt := srcAt
	switch {
	case len(srcs) > 0:
		addr = addrOpts("-s", srcs, srcNeg)
		if len(srcs) > 1 {
			for _, p := range srcs {
				expand = append(expand, ir.Src{Prefixes: []netip.Prefix{p}, Neg: srcNeg})
			}
		}
	case len(dsts) > 0:
		addr = addrOpts("-d", dsts, dstNeg)
		addrAt = dstAt
		if len(dsts) > 1 {
			for _, p := range dsts {
				expand = append(expand, ir.Dst{Prefixes: []netip.Prefix{p}, Neg: dstNeg})
			}
		}
	}
	var out []line
	for i, a := range addr {
		fields := []string{"-A", chain}
		if a != "" {
			fields = append(fields, a)
		}
		fields = append(fields, parts...)
		if target != "" {
			fields = append(fields, target)
		}
		x := line{text: strings.Join(fields, " "), rule: r}
		if expand != nil {
			c := *r
			c.Matches = append([]ir.Match(nil), r.Matches...)
			c.Matches[addrAt] = expand[i]
			x.rule = &c
		}
		out = append(out, x)
	}
	return out, nil
}

func addrOpts(flag string, ps []netip.Prefix, neg bool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if neg {
			out[i] = fmt.Sprintf("! %s %s", flag, p)
		} else {
			out[i] = fmt.Sprintf("%s %s", flag, p)
		}
	}
	return out
}

func protoName(p uint8, f ir.Family) string {
	switch p {
	case ir.ProtoTCP:
		return "tcp"
	case ir.ProtoUDP:
		return "udp"
	case ir.ProtoICMP:
		return "icmp"
	case ir.ProtoICMPv6:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

func renderMatch(m ir.Match, f ir.Family, proto uint8) (string, error) {
	switch m := m.(type) {
	case ir.InIface:
		return neg(m.Neg) + "-i " + m.Name, nil
	case ir.Proto:
		return "-p " + protoName(m.Proto, f), nil
	case ir.DPort:
		return portOpt("--dport", "--dports", m.Ports, proto)
	case ir.SPort:
		return portOpt("--sport", "--sports", m.Ports, proto)
	case ir.TCPFlags:
		return fmt.Sprintf("-m tcp %s--tcp-flags %s %s", neg(m.Neg), flagNames(m.Mask), flagNames(m.Comp)), nil
	case ir.CTState:
		return "-m conntrack --ctstate " + ctStates(m.States), nil
	case ir.ICMPType:
		if f == ir.IPv6 {
			return fmt.Sprintf("-m icmp6 --icmpv6-type %d", m.Type), nil
		}
		return fmt.Sprintf("-m icmp --icmp-type %d", m.Type), nil
	case ir.Fragment:
		if f == ir.IPv6 {
			return "", fmt.Errorf("the fragment match is IPv4 only")
		}
		return "-f", nil
	case ir.Length:
		return fmt.Sprintf("-m length --length %d:%d", m.Min, m.Max), nil
	case ir.InSet:
		dir := "src"
		if m.Dir == ir.DstAddr {
			dir = "dst"
		}
		return fmt.Sprintf("-m set %s--match-set %s %s", neg(m.Neg), SetName(m.Set, f), dir), nil
	case ir.String:
		if err := text("string match", m.Pattern, 128); err != nil {
			return "", err
		}
		s := "-m string --string " + quote(m.Pattern) + " --algo bm"
		if m.From > 0 {
			s += fmt.Sprintf(" --from %d", m.From)
		}
		s += fmt.Sprintf(" --to %d", m.To)
		if m.IgnoreCase {
			s += " --icase"
		}
		return s, nil
	case ir.Recent:
		op := map[ir.RecentOp]string{ir.RecentSet: "--set", ir.RecentUpdate: "--update", ir.RecentRCheck: "--rcheck"}[m.Op]
		s := "-m recent " + neg(m.Neg) + op + " --name " + m.Name
		if m.Seconds > 0 {
			s += fmt.Sprintf(" --seconds %d", m.Seconds)
		}
		if m.Hitcount > 0 {
			s += fmt.Sprintf(" --hitcount %d", m.Hitcount)
		}
		if m.RTTL {
			s += " --rttl"
		}
		return s, nil
	case ir.Limit:
		n, u := ir.PerUnit(m.Rate, m.Per)
		return fmt.Sprintf("-m limit --limit %d/%s --limit-burst %d", n, unitName(u), m.Burst), nil
	case ir.SourceRateOver:
		n, u := ir.PerUnit(m.Rate, m.Per)
		expire := m.Per * 2
		if expire < 10*time.Second {
			expire = 10 * time.Second
		}
		mode := "srcip"
		if m.Dir == ir.DstAddr {
			mode = "dstip"
		}
		return fmt.Sprintf("-m hashlimit --hashlimit-above %d/%s --hashlimit-burst %d --hashlimit-mode %s --hashlimit-name %s --hashlimit-htable-max %d --hashlimit-htable-expire %d",
			n, unitName(u), m.Burst, mode, m.Name, m.Size, expire.Milliseconds()), nil
	case ir.Payload:
		return "", fmt.Errorf("raw payload matches are nftables only")
	}
	return "", fmt.Errorf("unknown match %T", m)
}

func renderTarget(r *ir.Rule, f ir.Family) (string, error) {
	if len(r.Stmts) > 1 || (len(r.Stmts) == 1 && r.Verdict.Kind != ir.Continue) {
		return "", fmt.Errorf("iptables takes one target per rule")
	}
	if len(r.Stmts) == 1 {
		switch s := r.Stmts[0].(type) {
		case ir.Log:
			if err := text("log prefix", s.Prefix, 29); err != nil {
				return "", err
			}
			return "-j LOG --log-prefix " + quote(s.Prefix), nil
		case ir.NFLog:
			if err := text("nflog prefix", s.Prefix, 63); err != nil {
				return "", err
			}
			return fmt.Sprintf("-j NFLOG --nflog-group %d --nflog-prefix %s", s.Group, quote(s.Prefix)), nil
		case ir.AddToSet:
			dir := "src"
			if s.Dir == ir.DstAddr {
				dir = "dst"
			}
			t := fmt.Sprintf("-j SET --add-set %s %s --exist", SetName(s.Set, f), dir)
			if s.Timeout > 0 {
				t += fmt.Sprintf(" --timeout %d", int(s.Timeout/time.Second))
			}
			return t, nil
		}
		return "", fmt.Errorf("unknown statement %T", r.Stmts[0])
	}
	switch r.Verdict.Kind {
	case ir.Continue:
		return "", nil
	case ir.Accept:
		return "-j ACCEPT", nil
	case ir.Drop:
		return "-j DROP", nil
	case ir.RejectTCPReset:
		return "-j REJECT --reject-with tcp-reset", nil
	case ir.Return:
		return "-j RETURN", nil
	case ir.Jump:
		return "-j " + r.Verdict.Chain, nil
	}
	return "", fmt.Errorf("unknown verdict %d", r.Verdict.Kind)
}

func portOpt(single, multi string, ps []ir.PortRange, proto uint8) (string, error) {
	if proto != ir.ProtoTCP && proto != ir.ProtoUDP {
		return "", fmt.Errorf("a port match needs -p tcp or -p udp")
	}
	if len(ps) == 1 {
		return single + " " + portRange(ps[0], ":"), nil
	}
	n := 0
	strs := make([]string, len(ps))
	for i, p := range ps {
		strs[i] = portRange(p, ":")
		n++
		if p.From != p.To {
			n++
		}
	}
	if n > 15 {
		return "", fmt.Errorf("more than 15 ports in one multiport match")
	}
	return "-m multiport " + multi + " " + strings.Join(strs, ","), nil
}

func portRange(p ir.PortRange, sep string) string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return fmt.Sprintf("%d%s%d", p.From, sep, p.To)
}

func neg(b bool) string {
	if b {
		return "! "
	}
	return ""
}

func flagNames(f uint8) string {
	if f == ir.ALL {
		return "ALL"
	}
	if f == 0 {
		return "NONE"
	}
	var names []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{ir.FIN, "FIN"}, {ir.SYN, "SYN"}, {ir.RST, "RST"}, {ir.PSH, "PSH"}, {ir.ACK, "ACK"}, {ir.URG, "URG"}} {
		if f&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func ctStates(s uint8) string {
	var names []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{ir.CTInvalid, "INVALID"}, {ir.CTNew, "NEW"}, {ir.CTRelated, "RELATED"}, {ir.CTEstablished, "ESTABLISHED"}} {
		if s&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func unitName(u time.Duration) string {
	switch u {
	case time.Second:
		return "sec"
	case time.Minute:
		return "min"
	case time.Hour:
		return "hour"
	}
	return "day"
}

// text refuses what a quoted iptables-restore argument cannot carry: a
// control character (a line break would end the rule and start another),
// or more than most bytes (the kernel's limit for the field).
func text(what, s string, most int) error {
	if len(s) > most {
		return fmt.Errorf("%s of %d bytes: the kernel takes at most %d", what, len(s), most)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %.40q contains the control character %U", what, s, r)
		}
	}
	return nil
}

// quote quotes a string for iptables-restore, which splits on blanks and
// understands double quotes with backslash escapes.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
