// Package nft renders a ruleset as one `table inet sipwall` script for
// `nft -f`: native sets with timeouts for the lists, per-element limits for
// per-source rates, raw payload matches for the SIP request line.
package nft

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// Table is the name of sipwall's table (family inet).
const Table = "sipwall"

// SetName is the nftables name of set name for family f.
func SetName(name string, f ir.Family) string {
	if f == ir.IPv6 {
		return name + "6"
	}
	return name + "4"
}

// rateSetName is the set that keeps per-source token buckets.
func rateSetName(name string, f ir.Family) string {
	return SetName("rate-"+strings.TrimPrefix(name, "sipwall-"), f)
}

var priority = map[ir.Table]string{ir.Raw: "raw", ir.Filter: "filter"}

// File is the nftables backend's one file.
const File = "sipwall.nft"

// Render renders rs as an nft script. The script replaces the table in one
// transaction: `table` + `delete table` first, so it loads whether or not the
// table exists, and touches nothing outside it. It is the text of rs's
// listing.
func Render(rs *ir.Ruleset) (string, error) {
	l, err := List(rs)
	if err != nil {
		return "", err
	}
	return l.Text(File), nil
}

// List renders rs as a listing: the sets, the per-source rate sets (set
// entries without an IR set), then each chain and its rules. A rule that
// must name its family (see familySpecific) is one entry per family;
// another is one entry for both families (Family Both).
func List(rs *ir.Ruleset) (*ir.Listing, error) {
	if rs.Profile == "article" {
		return nil, fmt.Errorf("render nftables: the article profile is an iptables ruleset (xt_recent, xt_string); compile it with --backend iptables")
	}
	l := &ir.Listing{}
	text := func(s string) { l.Add(ir.Entry{Kind: ir.EntryText, File: File, Family: ir.Both, Text: s}) }
	text(fmt.Sprintf("#!/usr/sbin/nft -f\n# sipwall %s ruleset (%s): load with nft -f\n", rs.Profile, rs.Families))
	text(fmt.Sprintf("table inet %s\ndelete table inet %s\n\ntable inet %s {\n", Table, Table, Table))
	fams := families(rs.Families)
	for _, s := range rs.Sets {
		for _, f := range fams {
			if s.Families.Has(f) {
				var b strings.Builder
				renderSet(&b, s, f)
				l.Add(ir.Entry{Kind: ir.EntrySet, File: File, Family: f, Text: b.String(), Set: s})
			}
		}
	}
	for _, r := range rateLimits(rs) {
		for _, f := range fams {
			expire := r.Per * 2
			if expire < 10*time.Second {
				expire = 10 * time.Second
			}
			l.Add(ir.Entry{Kind: ir.EntrySet, File: File, Family: f, Text: fmt.Sprintf("\tset %s {\n\t\ttype %s\n\t\tflags dynamic,timeout\n\t\tsize %d\n\t\ttimeout %s\n\t\tcomment %s\n\t}\n\n",
				rateSetName(r.Name, f), addrType(f), r.Size, dur(expire), Quote(rateAbout(r)+r.Name))})
		}
	}
	for i, c := range rs.Chains {
		decl := fmt.Sprintf("\tchain %s {\n", c.Name)
		if c.Hook != "" {
			decl += fmt.Sprintf("\t\ttype filter hook %s priority %s; policy %s;\n", c.Hook, priority[c.Table], verdictWord(c.Policy))
		}
		l.Add(ir.Entry{Kind: ir.EntryChain, File: File, Family: ir.Both, Table: c.Table, Chain: c.Name, Hook: c.Hook, Policy: c.Policy, Text: decl})
		pos := 0
		for j, r := range c.Rules {
			for _, f := range fams {
				if !r.Fam().Has(f) || (r.Fam() == ir.Both && !familySpecific(r) && f == ir.IPv6) {
					continue
				}
				ff := f
				if r.Fam() == ir.Both && !familySpecific(r) {
					ff = ir.Both
				}
				line, err := renderRule(r, ff)
				if err != nil {
					return nil, fmt.Errorf("render nftables: chain %s rule %d (%s): %w", c.Name, j+1, r.Comment, err)
				}
				pos++
				l.Add(ir.Entry{Kind: ir.EntryRule, File: File, Family: ff, Table: c.Table, Chain: c.Name, Position: pos,
					Text: "\t\t" + line + "\n", Rule: r, From: r})
			}
		}
		end := "\t}\n"
		if i < len(rs.Chains)-1 {
			end += "\n"
		}
		text(end)
	}
	text("}\n")
	return l, nil
}

func families(f ir.Family) []ir.Family {
	if f == ir.Both {
		return []ir.Family{ir.IPv4, ir.IPv6}
	}
	return []ir.Family{f}
}

func addrType(f ir.Family) string {
	if f == ir.IPv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

func renderSet(b *strings.Builder, s *ir.Set, f ir.Family) {
	fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n", SetName(s.Name, f), addrType(f))
	flags := []string{}
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Interval {
		flags = append(flags, "interval")
	}
	flags = append(flags, "timeout")
	fmt.Fprintf(b, "\t\tflags %s\n\t\tsize %d\n", strings.Join(flags, ","), s.Size)
	if s.Timeout > 0 {
		fmt.Fprintf(b, "\t\ttimeout %s\n", dur(s.Timeout))
	}
	if s.Comment != "" {
		fmt.Fprintf(b, "\t\tcomment %s\n", Quote(s.Comment))
	}
	var elems []string
	for _, e := range s.Elements {
		if e.Addr().Is4() == (f == ir.IPv4) {
			elems = append(elems, prefix(e))
		}
	}
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n\n")
}

// rateAbout starts the comment of a rate set: whose bucket it holds.
func rateAbout(r ir.SourceRateOver) string {
	if r.Dir == ir.DstAddr {
		return "per-destination rate: "
	}
	return "per-source rate: "
}

// rateLimits collects the per-source rate limiters, each declared once.
func rateLimits(rs *ir.Ruleset) []ir.SourceRateOver {
	seen := map[string]ir.SourceRateOver{}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			for _, m := range r.Matches {
				if s, ok := m.(ir.SourceRateOver); ok {
					seen[s.Name] = s
				}
			}
		}
	}
	out := make([]ir.SourceRateOver, 0, len(seen))
	for _, s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// familySpecific reports whether a rule must be written once per family
// (it names an address, a set, an ICMP type, a length or a fragment).
func familySpecific(r *ir.Rule) bool {
	for _, m := range r.Matches {
		switch m.(type) {
		case ir.InSet, ir.SourceRateOver, ir.ICMPType, ir.Length, ir.Src, ir.Dst, ir.Fragment:
			return true
		}
	}
	for _, s := range r.Stmts {
		if _, ok := s.(ir.AddToSet); ok {
			return true
		}
	}
	return false
}

func renderRule(r *ir.Rule, f ir.Family) (string, error) {
	var parts []string
	switch f {
	case ir.IPv4:
		parts = append(parts, "meta nfproto ipv4")
	case ir.IPv6:
		parts = append(parts, "meta nfproto ipv6")
	}
	proto := uint8(0)
	for _, m := range r.Matches {
		if p, ok := m.(ir.Proto); ok {
			proto = p.Proto
		}
	}
	var stmts []string
	for _, m := range r.Matches {
		s, isStmt, err := renderMatch(m, f, proto)
		if err != nil {
			return "", err
		}
		if isStmt {
			stmts = append(stmts, s)
		} else {
			parts = append(parts, s)
		}
	}
	parts = append(parts, stmts...)
	for _, s := range r.Stmts {
		switch s := s.(type) {
		case ir.Log:
			if err := text("log prefix", s.Prefix); err != nil {
				return "", err
			}
			parts = append(parts, "log prefix "+Quote(s.Prefix))
		case ir.NFLog:
			if err := text("log prefix", s.Prefix); err != nil {
				return "", err
			}
			parts = append(parts, fmt.Sprintf("log prefix %s group %d", Quote(s.Prefix), s.Group))
		case ir.AddToSet:
			t := ""
			if s.Timeout > 0 {
				t = " timeout " + dur(s.Timeout)
			}
			parts = append(parts, fmt.Sprintf("update @%s { %s%s }", SetName(s.Set, f), addrField(f, s.Dir), t))
		default:
			return "", fmt.Errorf("unknown statement %T", s)
		}
	}
	parts = append(parts, "counter")
	switch r.Verdict.Kind {
	case ir.Continue:
	case ir.Accept:
		parts = append(parts, "accept")
	case ir.Drop:
		parts = append(parts, "drop")
	case ir.RejectTCPReset:
		parts = append(parts, "reject with tcp reset")
	case ir.Return:
		parts = append(parts, "return")
	case ir.Jump:
		parts = append(parts, "jump "+r.Verdict.Chain)
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+Quote(r.Comment))
	}
	return strings.Join(parts, " "), nil
}

func addrField(f ir.Family, d ir.Direction) string {
	p := "ip"
	if f == ir.IPv6 {
		p = "ip6"
	}
	if d == ir.DstAddr {
		return p + " daddr"
	}
	return p + " saddr"
}

// renderMatch returns the nft expression for m; isStmt marks expressions
// that nft wants after the plain matches (per-source limits).
func renderMatch(m ir.Match, f ir.Family, proto uint8) (s string, isStmt bool, err error) {
	switch m := m.(type) {
	case ir.InIface:
		op := ""
		if m.Neg {
			op = "!= "
		}
		return "iifname " + op + Quote(strings.Replace(m.Name, "+", "*", 1)), false, nil
	case ir.Proto:
		return "meta l4proto " + protoName(m.Proto), false, nil
	case ir.Src:
		return addrField(f, ir.SrcAddr) + neg(m.Neg) + prefixSet(m.Prefixes), false, nil
	case ir.Dst:
		return addrField(f, ir.DstAddr) + neg(m.Neg) + prefixSet(m.Prefixes), false, nil
	case ir.DPort, ir.SPort:
		var ps []ir.PortRange
		field := "dport"
		if d, ok := m.(ir.DPort); ok {
			ps = d.Ports
		} else {
			ps, field = m.(ir.SPort).Ports, "sport"
		}
		if proto != ir.ProtoTCP && proto != ir.ProtoUDP {
			return "", false, fmt.Errorf("a port match needs tcp or udp")
		}
		strs := make([]string, len(ps))
		for i, p := range ps {
			strs[i] = strconv.Itoa(int(p.From))
			if p.To != p.From {
				strs[i] += "-" + strconv.Itoa(int(p.To))
			}
		}
		v := strs[0]
		if len(strs) > 1 {
			v = "{ " + strings.Join(strs, ", ") + " }"
		}
		return protoName(proto) + " " + field + " " + v, false, nil
	case ir.TCPFlags:
		op := "=="
		if m.Neg {
			op = "!="
		}
		return fmt.Sprintf("tcp flags & (%s) %s %s", flagNames(m.Mask, "|"), op, flagValue(m.Comp)), false, nil
	case ir.CTState:
		return "ct state " + ctStates(m.States), false, nil
	case ir.ICMPType:
		if f == ir.IPv6 {
			return fmt.Sprintf("icmpv6 type %d", m.Type), false, nil
		}
		return fmt.Sprintf("icmp type %d", m.Type), false, nil
	case ir.Fragment:
		return "ip frag-off & 0x1fff != 0", false, nil
	case ir.Length:
		if f == ir.IPv6 {
			return fmt.Sprintf("ip6 length %d-%d", sub40(m.Min), sub40(m.Max)), false, nil
		}
		return fmt.Sprintf("ip length %d-%d", m.Min, m.Max), false, nil
	case ir.InSet:
		return addrField(f, m.Dir) + neg(m.Neg) + "@" + SetName(m.Set, f), false, nil
	case ir.Payload:
		return fmt.Sprintf("@ih,%d,%d 0x%x", int(m.Offset)*8, len(m.Bytes)*8, m.Bytes), false, nil
	case ir.Limit:
		n, u := ir.PerUnit(m.Rate, m.Per)
		return fmt.Sprintf("limit rate %d/%s burst %d packets", n, unitName(u), m.Burst), false, nil
	case ir.SourceRateOver:
		n, u := ir.PerUnit(m.Rate, m.Per)
		return fmt.Sprintf("update @%s { %s limit rate over %d/%s burst %d packets }",
			rateSetName(m.Name, f), addrField(f, m.Dir), n, unitName(u), m.Burst), true, nil
	case ir.String:
		return "", false, fmt.Errorf("nftables cannot search for a string (%q)", m.Pattern)
	case ir.Recent:
		return "", false, fmt.Errorf("xt_recent is iptables only")
	}
	return "", false, fmt.Errorf("unknown match %T", m)
}

func sub40(n uint16) int {
	if n < 40 {
		return 0
	}
	return int(n) - 40
}

func neg(b bool) string {
	if b {
		return " != "
	}
	return " "
}

func prefix(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func prefixSet(ps []netip.Prefix) string {
	if len(ps) == 1 {
		return prefix(ps[0])
	}
	strs := make([]string, len(ps))
	for i, p := range ps {
		strs[i] = prefix(p)
	}
	return "{ " + strings.Join(strs, ", ") + " }"
}

func protoName(p uint8) string {
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

func flagNames(f uint8, sep string) string {
	var names []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{ir.FIN, "fin"}, {ir.SYN, "syn"}, {ir.RST, "rst"}, {ir.PSH, "psh"}, {ir.ACK, "ack"}, {ir.URG, "urg"}} {
		if f&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, sep)
}

func flagValue(f uint8) string {
	if f == 0 {
		return "0x0"
	}
	return flagNames(f, "|")
}

func ctStates(s uint8) string {
	var names []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{ir.CTInvalid, "invalid"}, {ir.CTNew, "new"}, {ir.CTEstablished, "established"}, {ir.CTRelated, "related"}} {
		if s&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func unitName(u time.Duration) string {
	switch u {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	}
	return "day"
}

func verdictWord(v ir.Verdict) string {
	if v.Kind == ir.Drop {
		return "drop"
	}
	return "accept"
}

// dur renders a duration the way nft reads it (1d2h3m4s).
func dur(d time.Duration) string {
	s := int64(d / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if s >= u.n {
			fmt.Fprintf(&b, "%d%s", s/u.n, u.name)
			s %= u.n
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// text refuses what a log prefix cannot carry in an nft string: a double quote or a
// backslash (no escapes), a "$" (a variable, in a log prefix), a control
// character.
func text(what, s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '$' {
			return fmt.Errorf("%s %.40q: nft cannot carry %q in a quoted string", what, s, r)
		}
	}
	return nil
}

// Quote writes s as an nft string: nft's strings have no escapes, so a
// double quote becomes a single one and a line break a space.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ").Replace(s) + `"`
}
