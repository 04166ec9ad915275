package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/render"
)

// opKind is the kind of a compiled match.
type opKind uint8

const (
	opIface opKind = iota
	opProto
	opSrc
	opDst
	opDPort
	opSPort
	opFlags
	opCT
	opICMP
	opFrag
	opLength
	opSet
	opString
	opPayload
	opRecent
	opLimit
	opRate
	opFamily // nft "meta nfproto": cheap guard, evaluated first
)

// op is one compiled match.
type op struct {
	kind     opKind
	neg      bool
	u8       uint8
	mask     uint8
	lo, hi   uint16
	ports    []ir.PortRange
	prefixes []netip.Prefix
	iface    string
	wild     bool
	set      int // index into Engine.sets
	dir      ir.Direction
	str      *strMatcher
	strBit   int // the matcher's bit in StringMatches, -1 past 64
	payload  []byte
	recent   int // index into Engine.recents
	rcfg     ir.Recent
	limit    int // index into Engine.limits
	rate     int // index into Engine.rates
}

type stmtKind uint8

const (
	stLog stmtKind = iota
	stNFLog
	stAdd
)

type stmt struct {
	kind    stmtKind
	group   uint16
	set     int
	dir     ir.Direction
	timeout time.Duration
}

// xrule is one rendered rule, compiled.
type xrule struct {
	id      int
	ops     []op
	stmts   []stmt
	verdict ir.VerdictKind
	jump    int // chain index for Jump
}

type xchain struct {
	name   string
	rules  []xrule
	base   bool
	policy ir.VerdictKind
}

// famProg is the program for one address family.
type famProg struct {
	chains   []xchain
	byName   map[string]int
	prerout  []int // base chains at prerouting (raw), in priority order
	input    []int // base chains at input (filter)
	output   []int
	hasRules bool
}

// Program is a compiled ruleset for one backend.
type Program struct {
	Backend backend.Name
	Rules   []Rule
	// Policies lists the base chains whose policy can decide a packet.
	rs      *ir.Ruleset
	fam     [2]famProg // IPv4, IPv6
	sets    []setSpec
	rates   []rateSpec
	limits  []limitSpec
	recents []string
	strs    []*strMatcher
	// ustrs are the distinct string matchers, in the order of their bits
	// in StringMatches (64 at most).
	ustrs []*strMatcher
	multi *multiMatcher // ustrs in one search, for StringMatches
}

type setSpec struct {
	name string
	fam  ir.Family
	set  *ir.Set
}

type rateSpec struct {
	name string
	fam  ir.Family
	m    ir.SourceRateOver
}

type limitSpec struct{ m ir.Limit }

// strBit returns the bit of a matcher in StringMatches: matchers with the
// same pattern, case, window and algorithm share one.
func (p *Program) strBit(s *strMatcher) int {
	for i, u := range p.ustrs {
		if string(u.pattern) == string(s.pattern) && u.icase == s.icase && u.from == s.from && u.to == s.to && u.algo == s.algo {
			return i
		}
	}
	if len(p.ustrs) == 64 {
		return -1
	}
	p.ustrs = append(p.ustrs, s)
	return len(p.ustrs) - 1
}

// HasStrings reports whether the program has string matches.
func (p *Program) HasStrings() bool { return len(p.ustrs) > 0 }

// StringMatches evaluates every string match of the program on pkt as
// Process evaluates it on a packet that is not reassembled, and returns
// the results as bits, for Input.Strings. It has no side effects and may
// run concurrently with the engine.
func (p *Program) StringMatches(pkt *packet.Packet) uint64 {
	if p.multi != nil {
		return p.multi.matches(pkt.Network)
	}
	var m uint64
	for i, s := range p.ustrs {
		if s.match(pkt.Network) {
			m |= 1 << i
		}
	}
	return m
}

func famIndex(f ir.Family) int {
	if f == ir.IPv6 {
		return 1
	}
	return 0
}

// Compile builds the program of rs for backend b from the listing the
// backend's renderer makes of it.
func Compile(rs *ir.Ruleset, b backend.Name) (*Program, error) {
	if b != backend.IPTables && b != backend.NFTables {
		return nil, fmt.Errorf("engine: unknown backend %q", b)
	}
	l, err := render.List(rs, b)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return Build(rs, l, b)
}

// Build builds the program of rs for backend b from l, the listing b's
// renderer made of rs: one program rule per rule entry, in the chain and
// position the entry gives, compiled from the entry's IR rule.
func Build(rs *ir.Ruleset, l *ir.Listing, b backend.Name) (*Program, error) {
	p := &Program{Backend: b, rs: rs}
	for i := range p.fam {
		p.fam[i].byName = map[string]int{}
	}
	var err error
	switch b {
	case backend.IPTables:
		err = p.buildIPTables(l)
	case backend.NFTables:
		err = p.buildNFT(l)
	default:
		err = fmt.Errorf("unknown backend %q", b)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	p.multi = newMultiMatcher(p.ustrs)
	return p, nil
}

// attach records a base chain at its hook, in the order the kernel runs
// them.
func (fp *famProg) attach(h ir.Hook, ci int) {
	switch h {
	case ir.Prerouting:
		fp.prerout = append(fp.prerout, ci)
	case ir.Input:
		fp.input = append(fp.input, ci)
	case ir.Output:
		fp.output = append(fp.output, ci)
	}
}

// buildIPTables builds one program per family from the rules.v4 and
// rules.v6 entries; chains are keyed by table and name, as iptables
// keeps them.
func (p *Program) buildIPTables(l *ir.Listing) error {
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Kind != ir.EntryChain {
			continue
		}
		fp := &p.fam[famIndex(e.Family)]
		key := string(e.Table) + "/" + e.Chain
		if e.Hook == "" {
			fp.addChain(key, false)
			continue
		}
		ci, seen := fp.byName[key]
		if !seen {
			ci = fp.addChain(key, true)
			fp.attach(e.Hook, ci)
		}
		fp.chains[ci].policy = policyKind(e.Policy)
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Kind != ir.EntryRule {
			continue
		}
		fp := &p.fam[famIndex(e.Family)]
		ci, ok := fp.byName[string(e.Table)+"/"+e.Chain]
		if !ok {
			return fmt.Errorf("iptables %s: rule %q is in an undeclared chain", e.Family, e.Line())
		}
		pr := pending{chain: ci, table: e.Table, chainName: e.Chain, r: e.Rule, orig: e.From, fam: e.Family, text: e.Line()}
		id := len(p.Rules)
		if err := p.addRuleID(fp, pr, e.Family, id); err != nil {
			return err
		}
		ri := p.ruleInfo(pr)
		ri.Position = e.Position
		p.Rules = append(p.Rules, ri)
	}
	return nil
}

// pending is a rule on its way into the program.
type pending struct {
	chain     int
	table     ir.Table
	chainName string
	r         *ir.Rule  // the rule to compile (the entry's rule)
	orig      *ir.Rule  // the ruleset's rule (nil for a rule the renderer made)
	fam       ir.Family // IPv4, IPv6, or Both (nft rules for both families)
	text      string
}

func policyKind(v ir.Verdict) ir.VerdictKind {
	if v.Kind == ir.Drop {
		return ir.Drop
	}
	return ir.Accept
}

func (fp *famProg) addChain(name string, base bool) int {
	if i, ok := fp.byName[name]; ok {
		return i
	}
	fp.chains = append(fp.chains, xchain{name: name, base: base, policy: ir.Accept})
	fp.byName[name] = len(fp.chains) - 1
	return len(fp.chains) - 1
}

// buildNFT builds both families' programs from the one table's entries:
// every chain exists in both; a rule for one family goes into its
// program, and a rule for both is compiled once and shared, with one
// counter and one limit, as the kernel keeps it.
func (p *Program) buildNFT(l *ir.Listing) error {
	var chains []*ir.Entry
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Kind != ir.EntryChain {
			continue
		}
		chains = append(chains, e)
		for j := range p.fam {
			fp := &p.fam[j]
			ci := fp.addChain(e.Chain, e.Hook != "")
			if e.Hook != "" {
				fp.chains[ci].policy = policyKind(e.Policy)
			}
		}
	}
	// Base chains by priority: raw (-300) before filter (0).
	for _, t := range []ir.Table{ir.Raw, ir.Filter} {
		for _, e := range chains {
			if e.Table == t {
				for j := range p.fam {
					p.fam[j].attach(e.Hook, p.fam[j].byName[e.Chain])
				}
			}
		}
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Kind != ir.EntryRule {
			continue
		}
		f := e.Family
		if f == ir.Both {
			f = ir.IPv4
		}
		fp := &p.fam[famIndex(f)]
		ci, ok := fp.byName[e.Chain]
		if !ok {
			return fmt.Errorf("nftables: rule %q is in an undeclared chain", e.Line())
		}
		pr := pending{chain: ci, table: e.Table, chainName: e.Chain, r: e.Rule, orig: e.From, fam: e.Family, text: e.Line()}
		if err := p.addRuleID(fp, pr, f, len(p.Rules)); err != nil {
			return err
		}
		if e.Family == ir.Both {
			// One rule, one counter and one limit for both
			// families: the IPv6 program shares the compiled rule.
			v4 := &p.fam[0].chains[ci].rules
			v6 := &p.fam[1].chains[p.fam[1].byName[e.Chain]].rules
			*v6 = append(*v6, (*v4)[len(*v4)-1])
			p.fam[1].hasRules = true
		}
		ri := p.ruleInfo(pr)
		ri.Position = e.Position
		p.Rules = append(p.Rules, ri)
	}
	return nil
}

func (p *Program) ruleInfo(pr pending) Rule {
	orig := pr.orig
	if orig == nil {
		orig = pr.r
	}
	ri := Rule{Family: pr.fam, Table: pr.table, Chain: pr.chainName, Text: pr.text, Comment: pr.r.Comment, Verdict: pr.r.Verdict.Kind, IR: orig}
	for _, m := range pr.r.Matches {
		if _, ok := m.(ir.SourceRateOver); ok {
			ri.RateLimit = true
		}
	}
	for _, s := range pr.r.Stmts {
		if a, ok := s.(ir.AddToSet); ok {
			ri.AddsTo = a.Set
		}
	}
	return ri
}

// addRuleID compiles pr for family f and appends it to its chain in fp.
func (p *Program) addRuleID(fp *famProg, pr pending, f ir.Family, id int) error {
	r := pr.r
	x := xrule{id: id, verdict: r.Verdict.Kind}
	if r.Verdict.Kind == ir.Jump {
		key := r.Verdict.Chain
		if p.Backend == backend.IPTables {
			key = string(pr.table) + "/" + key
		}
		ci, ok := fp.byName[key]
		if !ok {
			return fmt.Errorf("rule %q jumps to unknown chain %s", pr.text, r.Verdict.Chain)
		}
		x.jump = ci
	}
	if pr.fam != ir.Both && p.Backend == backend.NFTables {
		x.ops = append(x.ops, op{kind: opFamily, u8: uint8(pr.fam)})
	}
	proto := uint8(0)
	for _, m := range r.Matches {
		if pm, ok := m.(ir.Proto); ok {
			proto = pm.Proto
		}
	}
	var late []op // nftables evaluates per-source limits after the matches
	for _, m := range r.Matches {
		o, err := p.compileMatch(m, f, proto)
		if err != nil {
			return fmt.Errorf("rule %q: %w", pr.text, err)
		}
		if o.kind == opRate && p.Backend == backend.NFTables {
			late = append(late, o)
			continue
		}
		x.ops = append(x.ops, o)
	}
	x.ops = append(x.ops, late...)
	for _, s := range r.Stmts {
		switch s := s.(type) {
		case ir.Log:
			x.stmts = append(x.stmts, stmt{kind: stLog})
		case ir.NFLog:
			x.stmts = append(x.stmts, stmt{kind: stNFLog, group: s.Group})
		case ir.AddToSet:
			x.stmts = append(x.stmts, stmt{kind: stAdd, set: p.setIndex(s.Set, f), dir: s.Dir, timeout: s.Timeout})
		default:
			return fmt.Errorf("unknown statement %T", s)
		}
	}
	fp.chains[pr.chain].rules = append(fp.chains[pr.chain].rules, x)
	fp.hasRules = true
	return nil
}

func (p *Program) setIndex(name string, f ir.Family) int {
	for i, s := range p.sets {
		if s.name == name && s.fam == f {
			return i
		}
	}
	p.sets = append(p.sets, setSpec{name: name, fam: f, set: p.rs.Set(name)})
	return len(p.sets) - 1
}

func (p *Program) compileMatch(m ir.Match, f ir.Family, proto uint8) (op, error) {
	switch m := m.(type) {
	case ir.InIface:
		name, wild := m.Name, false
		if strings.HasSuffix(name, "+") {
			name, wild = strings.TrimSuffix(name, "+"), true
		}
		return op{kind: opIface, iface: name, wild: wild, neg: m.Neg}, nil
	case ir.Proto:
		return op{kind: opProto, u8: m.Proto}, nil
	case ir.Src:
		return op{kind: opSrc, prefixes: m.Prefixes, neg: m.Neg}, nil
	case ir.Dst:
		return op{kind: opDst, prefixes: m.Prefixes, neg: m.Neg}, nil
	case ir.DPort:
		return op{kind: opDPort, ports: m.Ports, u8: proto}, nil
	case ir.SPort:
		return op{kind: opSPort, ports: m.Ports, u8: proto}, nil
	case ir.TCPFlags:
		return op{kind: opFlags, mask: m.Mask, u8: m.Comp, neg: m.Neg}, nil
	case ir.CTState:
		return op{kind: opCT, u8: m.States}, nil
	case ir.ICMPType:
		return op{kind: opICMP, u8: m.Type}, nil
	case ir.Fragment:
		return op{kind: opFrag}, nil
	case ir.Length:
		return op{kind: opLength, lo: m.Min, hi: m.Max}, nil
	case ir.InSet:
		if p.rs.Set(m.Set) == nil {
			return op{}, fmt.Errorf("unknown set %s", m.Set)
		}
		return op{kind: opSet, set: p.setIndex(m.Set, f), dir: m.Dir, neg: m.Neg}, nil
	case ir.String:
		if p.Backend != backend.IPTables {
			return op{}, fmt.Errorf("string match with nftables")
		}
		s := newStrMatcher(m.Pattern, m.IgnoreCase, m.From, m.To, algoBM)
		p.strs = append(p.strs, s)
		return op{kind: opString, str: s, strBit: p.strBit(s)}, nil
	case ir.Payload:
		return op{kind: opPayload, lo: m.Offset, payload: []byte(m.Bytes)}, nil
	case ir.Recent:
		idx := -1
		for i, n := range p.recents {
			if n == m.Name {
				idx = i
			}
		}
		if idx < 0 {
			p.recents = append(p.recents, m.Name)
			idx = len(p.recents) - 1
		}
		return op{kind: opRecent, recent: idx, rcfg: m}, nil
	case ir.Limit:
		p.limits = append(p.limits, limitSpec{m: m})
		return op{kind: opLimit, limit: len(p.limits) - 1}, nil
	case ir.SourceRateOver:
		idx := -1
		for i, r := range p.rates {
			if r.name == m.Name && r.fam == f {
				idx = i
			}
		}
		if idx < 0 {
			p.rates = append(p.rates, rateSpec{name: m.Name, fam: f, m: m})
			idx = len(p.rates) - 1
		}
		return op{kind: opRate, rate: idx, dir: m.Dir}, nil
	}
	return op{}, fmt.Errorf("unknown match %T", m)
}
