package engine

import (
	"net/netip"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
)

// Engine is the dynamic state of a program. It is not safe for concurrent
// use.
type Engine struct {
	prog     *Program
	opt      Options
	Counters []Counter
	// PolicyCounters counts the packets each base chain's policy decided,
	// by chain name ("filter/INPUT" for iptables, the chain for nft).
	policyCount map[string]*Counter
	// chainPolicy is policyCount by family index and chain index.
	chainPolicy [2][]*Counter
	sets        []*addrSet
	rates       []*rateTable
	limits      []*limiter
	recents     []*recentTable
	ct          *conntrack
	frag        *defrag
	c           pctx
	res         Result
	stack       [32]frame
}

type frame struct{ chain, rule int }

// pctx is the per-packet evaluation context.
type pctx struct {
	pkt     *packet.Packet
	blocks  [][]byte // a reassembled datagram's fragments, for xt_string
	fam     ir.Family
	now     int64
	srcKey  addrKey
	dstKey  addrKey
	l3      []byte
	iface   string
	ct      uint8
	hasICMP bool
	hasL4   bool
	hotdrop bool // a match dropped the packet outright (xt_hashlimit, table full)
	strsOK  bool // strs holds the string matches' results
	strs    uint64
}

// New returns an engine with empty state for prog.
func New(prog *Program, opt Options) *Engine {
	if opt.Iface == "" {
		opt.Iface = "eth0"
	}
	if opt.ConntrackMax <= 0 {
		opt.ConntrackMax = 262144
	}
	e := &Engine{prog: prog, opt: opt, Counters: make([]Counter, len(prog.Rules)), policyCount: map[string]*Counter{}}
	for _, s := range prog.sets {
		e.sets = append(e.sets, newAddrSet(s.set, s.fam))
	}
	for _, r := range prog.rates {
		e.rates = append(e.rates, newRateTable(r.m, prog.Backend == backend.NFTables))
	}
	for _, l := range prog.limits {
		e.limits = append(e.limits, newLimiter(l.m, prog.Backend == backend.NFTables))
	}
	for _, n := range prog.recents {
		e.recents = append(e.recents, newRecentTable(n))
	}
	for i := range prog.fam {
		for _, ch := range prog.fam[i].chains {
			if ch.base && e.policyCount[ch.name] == nil {
				e.policyCount[ch.name] = &Counter{}
			}
		}
	}
	for i := range prog.fam {
		e.chainPolicy[i] = make([]*Counter, len(prog.fam[i].chains))
		for j, ch := range prog.fam[i].chains {
			e.chainPolicy[i][j] = e.policyCount[ch.name]
		}
	}
	e.ct = newConntrack(opt.ConntrackMax)
	e.frag = newDefrag()
	return e
}

// Program returns the engine's program.
func (e *Engine) Program() *Program { return e.prog }

// PolicyCounter returns the counter of a base chain's policy.
func (e *Engine) PolicyCounter(chain string) Counter {
	if c := e.policyCount[chain]; c != nil {
		return *c
	}
	return Counter{}
}

// AddToSet puts addr into set (the IR name) as the packet path would, at
// time t (ns): for a userspace inspector such as sipwall guard. It reports
// whether the address is new.
func (e *Engine) AddToSet(set string, addr netip.Addr, now int64) bool {
	f := ir.IPv4
	if addr.Is6() && !addr.Is4In6() {
		f = ir.IPv6
	}
	for i, s := range e.prog.sets {
		if s.name == set && s.fam == f {
			isNew, _ := e.sets[i].add(keyOf(addr), now, 0)
			return isNew
		}
	}
	return false
}

// InSet reports whether addr is in set at time now (ns).
func (e *Engine) InSet(set string, addr netip.Addr, now int64) bool {
	f := ir.IPv4
	if addr.Is6() && !addr.Is4In6() {
		f = ir.IPv6
	}
	for i, s := range e.prog.sets {
		if s.name == set && s.fam == f {
			return e.sets[i].has(addr, keyOf(addr), now)
		}
	}
	return false
}

// Process evaluates one packet and returns what happened to it. The result
// is valid until the next call.
func (e *Engine) Process(in *Input) *Result {
	r := &e.res
	*r = Result{Rule: -1}
	p := in.Pkt
	if p.IPVersion == 0 || len(p.Network) == 0 {
		r.Verdict = Ignored
		return r
	}
	if in.Dir == Out && !e.opt.Outgoing {
		r.Verdict = Ignored
		return r
	}
	now := in.Time.UnixNano()
	var blocks [][]byte
	if p.Fragmented || p.IPVersion == 6 && p.Layers.Has(packet.LayerIPv6Ext) {
		// nf_defrag at priority -400, before raw and conntrack.
		switch e.frag.add(p, in.Dir == Out, now) {
		case fragHeld:
			r.Verdict, r.Bytes, r.Pkt = Held, p.L3Len, p
			return r
		case fragDiscarded:
			r.Verdict, r.Bytes, r.Pkt = Discarded, p.L3Len, p
			return r
		case fragDone:
			p = &e.frag.pkt
			blocks = e.frag.blocks
		}
	}
	r.Pkt = p
	c := &e.c
	*c = pctx{pkt: p, now: now, iface: e.opt.Iface, l3: p.Network, blocks: blocks}
	if in.StringsSet && p == in.Pkt {
		c.strsOK, c.strs = true, in.Strings
	}
	c.fam = ir.IPv4
	if p.IPVersion == 6 {
		c.fam = ir.IPv6
	}
	c.srcKey, c.dstKey = keyOf(p.Src), keyOf(p.Dst)
	c.hasICMP = p.Layers.Has(packet.LayerICMP) || p.Layers.Has(packet.LayerICMPv6)
	c.hasL4 = p.HasPorts()
	r.Bytes = p.L3Len
	fp := &e.prog.fam[famIndex(c.fam)]
	if in.Dir == Out {
		return e.outgoing(fp)
	}
	// raw PREROUTING, before conntrack.
	if v := e.hook(fp, fp.prerout); v == Dropped {
		e.rememberDrop()
		return r
	}
	ctr := e.ct.track(c)
	c.ct = ctr.state
	r.CTState = ctr.state
	v := e.hook(fp, fp.input)
	if ctr.hasSlot {
		ent := &e.ct.slots[ctr.slot]
		if v == Dropped && ctr.created {
			e.ct.remove(ctr.slot)
		} else {
			ent.confirmed = true
			ent.lastInDropped = v == Dropped
		}
	}
	if v == Dropped && (!ctr.hasSlot || ctr.created) {
		if ctr.created && (p.Protocol == packet.ProtoTCP || p.Protocol == packet.ProtoUDP) {
			// The entry of this very tuple was just removed: nothing to
			// look up.
			e.ct.dropped.put(e.dropKey(), c.now)
		} else {
			e.rememberDrop()
		}
	}
	return r
}

// rememberDrop notes that the host dropped a packet of a flow it has no
// entry for, so that its captured answer is not replayed.
func (e *Engine) rememberDrop() {
	c := &e.c
	k := e.dropKey()
	if slot, _, ok := e.ct.lookup(k, c.now); ok {
		e.ct.slots[slot].lastInDropped = true
		return
	}
	e.ct.dropped.put(k, c.now)
}

// dropKey is the tuple of the packet being evaluated, for rememberDrop.
func (e *Engine) dropKey() flowKey {
	c := &e.c
	p := c.pkt
	return flowKey{src: c.srcKey, dst: c.dstKey, proto: p.Protocol, sp: p.SrcPort, dp: p.DstPort}
}

// outgoing evaluates a packet the host sends: conntrack, then OUTPUT. An
// answer to a packet the ruleset dropped is suppressed.
func (e *Engine) outgoing(fp *famProg) *Result {
	c, r, p := &e.c, &e.res, e.c.pkt
	k := flowKey{src: c.dstKey, dst: c.srcKey, proto: p.Protocol, sp: p.DstPort, dp: p.SrcPort}
	if slot, _, ok := e.ct.lookup(k, c.now); ok {
		if e.ct.slots[slot].lastInDropped {
			r.Verdict = Suppressed
			return r
		}
	} else if t, ok := e.ct.dropped.get(k); ok && c.now-t < int64(udpReplied) {
		r.Verdict = Suppressed
		return r
	} else if p.Protocol == packet.ProtoTCP && p.TCPFlags&packet.TCPRst != 0 {
		// A reset for a connection the host does not know: its answer to
		// a segment that never reached it (or to one it refused).
		r.Verdict = Suppressed
		return r
	}
	ctr := e.ct.track(c)
	c.ct = ctr.state
	r.CTState = ctr.state
	v := e.hook(fp, fp.output)
	if ctr.hasSlot {
		if v == Dropped && ctr.created {
			e.ct.remove(ctr.slot)
		} else {
			e.ct.slots[ctr.slot].confirmed = true
		}
	}
	return r
}

// hook runs the base chains of a hook in priority order.
func (e *Engine) hook(fp *famProg, chains []int) Verdict {
	for _, ci := range chains {
		if e.run(fp, ci) == Dropped {
			e.res.Verdict = Dropped
			return Dropped
		}
	}
	return Accepted
}

// run evaluates base chain start; jumps and returns use a fixed stack.
func (e *Engine) run(fp *famProg, start int) Verdict {
	ci, ri, sp := start, 0, 0
	c := &e.c
	for {
		ch := &fp.chains[ci]
		if ri >= len(ch.rules) {
			if sp == 0 {
				return e.policy(fp, ci, ch)
			}
			sp--
			ci, ri = e.stack[sp].chain, e.stack[sp].rule
			continue
		}
		x := &ch.rules[ri]
		ri++
		if !e.match(x, c) {
			if c.hotdrop {
				// ipt_do_table stops at once: NF_DROP, no counter.
				return Dropped
			}
			continue
		}
		cnt := &e.Counters[x.id]
		cnt.Packets++
		cnt.Bytes += uint64(c.pkt.L3Len)
		for i := range x.stmts {
			e.exec(&x.stmts[i])
		}
		switch x.verdict {
		case ir.Accept:
			return Accepted
		case ir.Drop, ir.RejectTCPReset:
			e.res.Rule = x.id
			return Dropped
		case ir.Return:
			if sp == 0 {
				return e.policy(fp, ci, ch)
			}
			sp--
			ci, ri = e.stack[sp].chain, e.stack[sp].rule
		case ir.Jump:
			if sp == len(e.stack) {
				// Deeper than any ruleset sipwall writes: iptables refuses
				// loops, so treat it as a drop.
				e.res.Rule = x.id
				return Dropped
			}
			e.stack[sp] = frame{ci, ri}
			sp++
			ci, ri = x.jump, 0
		}
	}
}

func (e *Engine) policy(fp *famProg, ci int, ch *xchain) Verdict {
	cnt := e.chainPolicy[0][ci]
	if fp != &e.prog.fam[0] {
		cnt = e.chainPolicy[1][ci]
	}
	if cnt != nil {
		cnt.Packets++
		cnt.Bytes += uint64(e.c.pkt.L3Len)
	}
	if ch.policy == ir.Drop {
		e.res.Rule = -1
		e.res.PolicyChain = ch.name
		return Dropped
	}
	return Accepted
}

func (e *Engine) exec(s *stmt) {
	c, r := &e.c, &e.res
	switch s.kind {
	case stNFLog:
		r.NFLog, r.NFLogGroup = true, s.group
	case stAdd:
		set := e.sets[s.set]
		k, a := c.srcKey, c.pkt.Src
		if s.dir == ir.DstAddr {
			k, a = c.dstKey, c.pkt.Dst
		}
		isNew, ok := set.add(k, c.now, s.timeout)
		if ok && r.NAdds < maxAdds {
			r.Adds[r.NAdds] = SetAdd{Set: set.name, Addr: a, New: isNew}
			r.NAdds++
		}
	}
}

func inPorts(ps []ir.PortRange, port uint16) bool {
	for _, r := range ps {
		if port >= r.From && port <= r.To {
			return true
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// match evaluates a rule's matches in order; side effects (limits,
// recent) happen only when the matches before them passed.
func (e *Engine) match(x *xrule, c *pctx) bool {
	p := c.pkt
	for i := range x.ops {
		o := &x.ops[i]
		var ok bool
		switch o.kind {
		case opFamily:
			ok = c.fam == ir.Family(o.u8)
		case opIface:
			if o.wild {
				ok = len(c.iface) >= len(o.iface) && c.iface[:len(o.iface)] == o.iface
			} else {
				ok = c.iface == o.iface
			}
			ok = ok != o.neg
		case opProto:
			ok = p.Protocol == o.u8
		case opSrc:
			ok = inPrefixes(o.prefixes, p.Src) != o.neg
		case opDst:
			ok = inPrefixes(o.prefixes, p.Dst) != o.neg
		case opDPort:
			ok = c.hasL4 && p.Protocol == o.u8 && inPorts(o.ports, p.DstPort)
		case opSPort:
			ok = c.hasL4 && p.Protocol == o.u8 && inPorts(o.ports, p.SrcPort)
		case opFlags:
			ok = p.Layers.Has(packet.LayerTCP) && ((p.TCPFlags&o.mask == o.u8) != o.neg)
		case opCT:
			ok = c.ct&o.u8 != 0
		case opICMP:
			if c.fam == ir.IPv6 {
				ok = p.Layers.Has(packet.LayerICMPv6) && p.ICMPType == o.u8
			} else {
				ok = p.Layers.Has(packet.LayerICMP) && p.ICMPType == o.u8
			}
		case opFrag:
			ok = c.fam == ir.IPv4 && p.FragOffset != 0
		case opLength:
			ok = p.L3Len >= int(o.lo) && p.L3Len <= int(o.hi)
		case opSet:
			k, a := c.srcKey, p.Src
			if o.dir == ir.DstAddr {
				k, a = c.dstKey, p.Dst
			}
			ok = e.sets[o.set].has(a, k, c.now) != o.neg
		case opString:
			e.res.UsedStrings = true
			if c.strsOK && o.strBit >= 0 {
				ok = c.strs&(1<<o.strBit) != 0
			} else if c.blocks != nil {
				ok = o.str.matchBlocks(c.blocks)
			} else {
				ok = o.str.match(c.l3)
			}
		case opPayload:
			ok = c.hasL4 && p.FragOffset == 0 && int(o.lo)+len(o.payload) <= len(p.Payload) &&
				string(p.Payload[o.lo:int(o.lo)+len(o.payload)]) == string(o.payload)
		case opRecent:
			ok = e.recents[o.recent].eval(o.rcfg, c.srcKey, c.fam, p.TTL, c.now)
		case opLimit:
			ok = e.limits[o.limit].pass(c.now)
		case opRate:
			k := c.srcKey
			if o.dir == ir.DstAddr {
				k = c.dstKey
			}
			over, full := e.rates[o.rate].over(k, c.now)
			if full && e.prog.Backend == backend.IPTables {
				// xt_hashlimit: dsthash_alloc_init fails on a full table
				// and the match sets hotdrop: the packet is dropped on
				// the spot, no rule counts it.
				e.res.Rule = x.id
				c.hotdrop = true
				return false
			}
			ok = over && !full
		}
		if !ok {
			return false
		}
	}
	return true
}

// PolicyInfo names a base chain and its policy.
type PolicyInfo struct {
	Chain  string
	Policy string
}

// Policies lists the base chains, each once, in program order.
func (p *Program) Policies() []PolicyInfo {
	var out []PolicyInfo
	seen := map[string]bool{}
	for i := range p.fam {
		for _, ch := range p.fam[i].chains {
			if !ch.base || seen[ch.name] {
				continue
			}
			seen[ch.name] = true
			pol := "accept"
			if ch.policy == ir.Drop {
				pol = "drop"
			}
			out = append(out, PolicyInfo{Chain: ch.name, Policy: pol})
		}
	}
	return out
}
