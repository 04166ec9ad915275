package replay

import (
	"net/netip"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/inspect"
	"github.com/sipwall/sipwall/internal/guard/jail"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
)

// Guard is sipwall guard as replay models it on a ruleset that hands SIP
// packets to nflog (the nftables backend): every packet the ruleset logs
// to nflog group compile.InspectGroup goes, in order, through guard's own
// inspector (package inspect: SIP parsing, TCP reassembly per flow, folded
// headers, the TLS server name), and its verdicts go through guard's own
// rules to the admitted and scanners sets: one decision per source per
// inspect.Hold, no ban for a never-banned source. An entry gets its set's
// own timeout, which is the one guard gives it: the scanners set's is
// sip.scanners.ban_for (guard's scanner ban), the admitted set's
// sip.admit_for.
type Guard struct {
	// Inspect is the inspector's configuration (inspect.FromPolicy).
	Inspect inspect.Config
	// NeverBan are sources guard never bans: the policy's trusted.all,
	// trusted.sip and guard.never_ban. Loopback is never banned either,
	// nor, with IgnoreSelf, Options.Local (guard's own addresses).
	NeverBan   []netip.Prefix
	IgnoreSelf bool
	// Delay is the time from the packet that decides a source to the
	// instant guard's set add takes effect in the kernel (nflog delivery,
	// inspection, one netlink round trip). The deciding packet itself is
	// never affected (nflog is asynchronous); the source's packets that
	// arrive within Delay after it meet the sets as they were, and are
	// handed to nflog and inspected again.
	Delay time.Duration
}

// DefaultGuardDelay is Guard.Delay as GuardFromPolicy sets it: about what
// sipwall guard takes, on a 2-core machine, from a packet being written to
// its source's set element being in the kernel (TestKernelGuard measures
// it: 0.4 to 1.3 ms).
const DefaultGuardDelay = time.Millisecond

// GuardFromPolicy returns guard's model for policy p as `sipwall guard -c`
// configures itself from it, or nil when that guard runs no inspector
// (guard.inspect false, or no sip.mode).
func GuardFromPolicy(p *policy.Policy) *Guard {
	if !p.Guard.Inspect || p.SIP.Mode == "" {
		return nil
	}
	g := &Guard{Inspect: inspect.FromPolicy(p), IgnoreSelf: p.Guard.IgnoreSelf, Delay: DefaultGuardDelay}
	for _, n := range p.Trusted.All {
		g.NeverBan = append(g.NeverBan, n.Prefix)
	}
	for _, n := range p.Trusted.SIP {
		g.NeverBan = append(g.NeverBan, n.Prefix)
	}
	for _, n := range p.Guard.NeverBan {
		g.NeverBan = append(g.NeverBan, n.Prefix)
	}
	return g
}

// guardModel is a running Guard.
type guardModel struct {
	in      *inspect.Inspector
	recent  *inspect.Decisions
	jail    *jail.Jail
	delay   int64
	pending []pendingAdd // set adds not yet in effect, by due time
	pruned  int64        // when recent was last pruned
}

// pendingAdd is a set add guard has decided and the kernel does not hold
// yet.
type pendingAdd struct {
	at   time.Time
	due  int64 // at in ns
	set  string
	list string
	addr netip.Addr
	src  *Source
}

func newGuardModel(g *Guard, local []netip.Addr) (*guardModel, error) {
	jc := jail.Config{NeverBan: g.NeverBan}
	if g.IgnoreSelf {
		jc.Self = local
	}
	j, err := jail.New(jc)
	if err != nil {
		return nil, err
	}
	return &guardModel{in: inspect.New(g.Inspect), recent: inspect.NewDecisions(), jail: j, delay: int64(g.Delay)}, nil
}

// due applies the set adds that have taken effect by now (ns).
func (m *guardModel) due(r *runner, now int64) {
	n := 0
	for n < len(m.pending) && m.pending[n].due <= now {
		a := &m.pending[n]
		r.eng.AddToSet(a.set, a.addr, a.due)
		r.enter(a.src, a.list, a.at)
		n++
	}
	if n > 0 {
		m.pending = append(m.pending[:0], m.pending[n:]...)
	}
}

// inspect hands a packet the ruleset logged to nflog to the inspector,
// at ts, and acts on its verdict as guard does.
func (m *guardModel) inspect(r *runner, s *Source, p *packet.Packet, ts time.Time) {
	res := m.in.Inspect(p)
	if res.Verdict == inspect.Pass {
		return
	}
	now := ts.UnixNano()
	if now-m.pruned > int64(time.Minute) {
		m.recent.Prune(ts)
		m.pruned = now
	}
	if !m.recent.Take(res.Src, ts) {
		return // a packet that was in flight when the source was decided
	}
	at := ts.Add(time.Duration(m.delay))
	add := pendingAdd{at: at, due: at.UnixNano(), set: compile.SetAdmitted, list: ListAdmitted, addr: res.Src, src: s}
	if res.Verdict == inspect.Ban {
		if _, ok := m.jail.Exempt(res.Src); ok {
			return
		}
		add.set, add.list = compile.SetScanners, ListScanner
	}
	if m.delay == 0 {
		r.eng.AddToSet(add.set, add.addr, now)
		r.enter(s, add.list, ts)
		return
	}
	m.pending = append(m.pending, add)
}
