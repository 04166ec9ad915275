package engine

import (
	"math"
	"math/bits"
	"net/netip"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// addrKey is an address as 16 bytes (IPv4 as the v4-mapped form).
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return addrKey(a.As16()) }

// addrSet is one family's instance of an ir.Set: an ipset hash:net or an
// nftables set, with per-entry expiry and a capacity that refuses new
// entries when full (it never evicts a live one).
type addrSet struct {
	name    string
	fam     ir.Family
	timeout int64 // default entry lifetime in ns; 0: permanent
	size    int
	entries map[addrKey]int64 // expiry in ns; 0: never
	nets    []netip.Prefix    // static networks
}

func newAddrSet(s *ir.Set, f ir.Family) *addrSet {
	a := &addrSet{fam: f, entries: map[addrKey]int64{}}
	if s == nil {
		return a
	}
	a.name, a.timeout, a.size = s.Name, int64(s.Timeout), s.Size
	for _, e := range s.Elements {
		if e.Addr().Is4() != (f == ir.IPv4) {
			continue
		}
		if e.Bits() == e.Addr().BitLen() {
			a.entries[keyOf(e.Addr())] = 0
		} else {
			a.nets = append(a.nets, e)
		}
	}
	return a
}

func (a *addrSet) has(addr netip.Addr, k addrKey, now int64) bool {
	if len(a.entries) > 0 {
		if exp, ok := a.entries[k]; ok {
			if exp == 0 || now < exp {
				return true
			}
			delete(a.entries, k)
		}
	}
	for _, n := range a.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// add adds or refreshes k (ipset add --exist, nft update). It reports
// whether the address is new and whether the set took it (a full set
// refuses).
func (a *addrSet) add(k addrKey, now int64, timeout time.Duration) (isNew, ok bool) {
	t := a.timeout
	if timeout > 0 {
		t = int64(timeout)
	}
	exp := int64(0)
	if t > 0 {
		exp = now + t
	}
	old, present := a.entries[k]
	if present && old != 0 && now >= old {
		present = false
	}
	if !present && a.size > 0 && len(a.entries) >= a.size {
		a.sweep(now)
		if len(a.entries) >= a.size {
			return false, false
		}
	}
	a.entries[k] = exp
	return !present, true
}

func (a *addrSet) sweep(now int64) {
	for k, exp := range a.entries {
		if exp != 0 && now >= exp {
			delete(a.entries, k)
		}
	}
}

// Kernel constants of xt_hashlimit (revision 2 and later) and xt_limit.
var (
	hashlimitCPJ   = pow2Below64(math.MaxUint64 / (HZ * 60 * 60 * 24))
	hashlimitScale = uint64(1000000)
	limitCPJ       = pow2Below64(0xFFFFFFFF / (HZ * 60 * 60 * 24))
)

const limitScale = 10000

func pow2Below64(x uint64) uint64 { return 1 << (63 - bits.LeadingZeros64(x)) }

// jiffies converts a packet time to kernel ticks.
func jiffies(ns int64) uint64 { return uint64(ns) / (uint64(time.Second) / HZ) }

// bucket is one source's token bucket.
type bucket struct {
	credit  uint64
	prev    int64 // jiffies (hashlimit) or ns (nft)
	expires int64 // ns
}

// rateTable is xt_hashlimit (--hashlimit-above, mode srcip) or an nftables
// set of per-element limits ("update @set { ip saddr limit rate over }").
type rateTable struct {
	nft     bool
	size    int
	expire  int64 // ns: hashlimit-htable-expire, or the set's timeout
	cost    uint64
	cap     uint64
	buckets map[addrKey]bucket
	// xt_hashlimit frees expired entries only in its garbage collector,
	// every --hashlimit-htable-gcinterval (1 s): an expired entry still
	// counts against --hashlimit-htable-max until then. gcBase is the
	// first packet's time (the collector's phase is the kernel's own).
	gcBase int64
	gcInit bool
	swept  int64 // the collector run last applied
}

// hashlimitHtableSize is xt_hashlimit's default bucket count (machines
// with over 1 GB of memory).
const hashlimitHtableSize = 8192

// hashlimitGC is xt_hashlimit's default --hashlimit-htable-gcinterval.
const hashlimitGC = int64(time.Second)

// lastGC is the instant of the collector's last run at or before now.
func (t *rateTable) lastGC(now int64) int64 {
	if !t.gcInit {
		t.gcBase, t.gcInit = now, true
	}
	if now < t.gcBase {
		return t.gcBase
	}
	return now - (now-t.gcBase)%hashlimitGC
}

func newRateTable(m ir.SourceRateOver, nftables bool) *rateTable {
	n, unit := ir.PerUnit(m.Rate, m.Per)
	expire := m.Per * 2
	if expire < 10*time.Second {
		expire = 10 * time.Second
	}
	t := &rateTable{nft: nftables, size: m.Size, expire: int64(expire), buckets: map[addrKey]bucket{}}
	if nftables {
		// nft_limit: tokens in ns; cost nsecs/rate, tokens_max cost*burst.
		nsecs := uint64(unit)
		t.cost = nsecs / uint64(n)
		t.cap = t.cost * uint64(m.Burst)
	} else {
		// htable_create: the table holds at least as many entries as it
		// has buckets (--hashlimit-htable-size, which sipwall leaves to
		// its default: 8192 on a machine with over 1 GB of memory).
		if t.size > 0 && t.size < hashlimitHtableSize {
			t.size = hashlimitHtableSize
		}
		// libxt_hashlimit: avg = scale * seconds-per-unit / rate.
		avg := hashlimitScale * uint64(unit/time.Second) / uint64(n)
		t.cost = hashlimitCredits(avg)
		t.cap = hashlimitCredits(avg * uint64(m.Burst))
	}
	return t
}

// hashlimitCredits is user2credits of xt_hashlimit.c (revision 2 and later).
func hashlimitCredits(user uint64) uint64 {
	if hashlimitScale >= HZ*hashlimitCPJ {
		return user / (hashlimitScale / (HZ * hashlimitCPJ))
	}
	return user * ((HZ * hashlimitCPJ) / hashlimitScale)
}

// over reports whether k is over its rate; drop is set when the table is
// full (hashlimit drops the packet, nft's dynset stops the rule).
func (t *rateTable) over(k addrKey, now int64) (over, full bool) {
	b, ok := t.buckets[k]
	var gc int64
	if !t.nft {
		gc = t.lastGC(now)
	}
	if ok && now >= b.expires && (t.nft || gc >= b.expires) {
		// Expired and freed by the garbage collector (an expired entry
		// it has not reached yet is found and refilled, which caps it
		// as a new one would be: the refill time is below the expiry).
		delete(t.buckets, k)
		ok = false
	}
	if !ok {
		if t.size > 0 && len(t.buckets) >= t.size {
			if t.nft {
				t.sweep(now)
			} else if gc > t.swept {
				// What the collector freed since its last run here.
				t.sweep(gc)
				t.swept = gc
			}
			if len(t.buckets) >= t.size {
				return false, true
			}
		}
		b = bucket{credit: t.cap}
		if t.nft {
			b.prev = now
		} else {
			b.prev = int64(jiffies(now))
		}
	} else if t.nft {
		tokens := b.credit + uint64(now-b.prev)
		if now < b.prev {
			tokens = b.credit
		}
		if tokens > t.cap {
			tokens = t.cap
		}
		b.credit, b.prev = tokens, now
	} else {
		j := int64(jiffies(now))
		if d := j - b.prev; d > 0 {
			b.prev = j
			b.credit += uint64(d) * hashlimitCPJ
			if b.credit > t.cap {
				b.credit = t.cap
			}
		}
	}
	b.expires = now + t.expire
	if b.credit >= t.cost {
		b.credit -= t.cost
		over = false
	} else {
		over = true
	}
	t.buckets[k] = b
	return over, false
}

func (t *rateTable) sweep(now int64) {
	for k, b := range t.buckets {
		if now >= b.expires {
			delete(t.buckets, k)
		}
	}
}

// limiter is a global token bucket: xt_limit (credits per jiffy) or
// nft_limit (tokens in ns).
type limiter struct {
	nft    bool
	cost   uint64
	cap    uint64
	credit uint64
	prev   int64
	init   bool
}

func newLimiter(m ir.Limit, nftables bool) *limiter {
	n, unit := ir.PerUnit(m.Rate, m.Per)
	l := &limiter{nft: nftables}
	if nftables {
		l.cost = uint64(unit) / uint64(n)
		l.cap = l.cost * uint64(m.Burst)
	} else {
		avg := uint64(limitScale) * uint64(unit/time.Second) / uint64(n)
		l.cost = limitCredits(avg)
		l.cap = limitCredits(avg * uint64(m.Burst))
	}
	l.credit = l.cap
	return l
}

// limitCredits is user2credits of xt_limit.c.
func limitCredits(user uint64) uint64 {
	if user > 0xFFFFFFFF/(HZ*limitCPJ) {
		return (user / limitScale) * HZ * limitCPJ
	}
	return (user * HZ * limitCPJ) / limitScale
}

// pass reports whether the packet is within the limit.
func (l *limiter) pass(now int64) bool {
	t := now
	if !l.nft {
		t = int64(jiffies(now))
	}
	if !l.init {
		l.init, l.prev = true, t
	}
	if l.nft {
		tokens := l.credit
		if t > l.prev {
			tokens += uint64(t - l.prev)
		}
		if tokens > l.cap {
			tokens = l.cap
		}
		l.prev = t
		if tokens >= l.cost {
			l.credit = tokens - l.cost
			return true
		}
		l.credit = tokens
		return false
	}
	if t > l.prev {
		l.credit += uint64(t-l.prev) * limitCPJ
		l.prev = t
	}
	if l.credit > l.cap {
		l.credit = l.cap
	}
	if l.credit >= l.cost {
		l.credit -= l.cost
		return true
	}
	return false
}

// xt_recent module defaults (ip_list_tot, ip_pkt_list_tot).
const (
	recentListTot  = 100
	recentStampTot = 20
	recentStamps   = 32 // roundup_pow_of_two(ip_pkt_list_tot)
)

type recentEntry struct {
	key     addrKey
	fam     ir.Family
	ttl     uint8
	nstamps int
	index   int
	stamps  [recentStamps]uint64
	prev    *recentEntry // LRU list
	next    *recentEntry
}

// recentTable is one xt_recent list: at most 100 addresses; when full, the
// least recently updated is forgotten.
type recentTable struct {
	name    string
	entries map[addrKey]*recentEntry
	free    []*recentEntry
	head    recentEntry // LRU sentinel: head.next is the oldest
}

func newRecentTable(name string) *recentTable {
	t := &recentTable{name: name, entries: make(map[addrKey]*recentEntry, recentListTot)}
	t.head.next, t.head.prev = &t.head, &t.head
	pool := make([]recentEntry, recentListTot)
	for i := range pool {
		t.free = append(t.free, &pool[i])
	}
	return t
}

func (t *recentTable) unlink(e *recentEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (t *recentTable) pushBack(e *recentEntry) {
	e.prev, e.next = t.head.prev, &t.head
	t.head.prev.next = e
	t.head.prev = e
}

// eval is recent_mt of xt_recent.c for the source address.
func (t *recentTable) eval(cfg ir.Recent, k addrKey, fam ir.Family, ttl uint8, now int64) bool {
	ret := cfg.Neg
	j := jiffies(now)
	e := t.entries[k]
	if e != nil && e.fam != fam {
		e = nil
	}
	if e != nil && cfg.RTTL && e.ttl != ttl && e.ttl != 0 && ttl != 0 {
		e = nil
	}
	if e == nil {
		if cfg.Op != ir.RecentSet {
			return ret
		}
		if len(t.free) == 0 {
			old := t.head.next
			t.unlink(old)
			delete(t.entries, old.key)
			t.free = append(t.free, old)
		}
		e = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		*e = recentEntry{key: k, fam: fam, ttl: ttl, nstamps: 1, index: 1}
		e.stamps[0] = j
		t.entries[k] = e
		t.pushBack(e)
		return !ret
	}
	switch cfg.Op {
	case ir.RecentSet:
		ret = !ret
	case ir.RecentUpdate, ir.RecentRCheck:
		var since uint64
		if cfg.Seconds > 0 {
			since = j - uint64(cfg.Seconds)*HZ
		}
		hits := 0
		for i := 0; i < e.nstamps; i++ {
			if cfg.Seconds > 0 && int64(since-e.stamps[i]) > 0 {
				continue
			}
			hits++
			if cfg.Hitcount == 0 || hits >= cfg.Hitcount {
				ret = !ret
				break
			}
		}
	}
	if cfg.Op == ir.RecentSet || (cfg.Op == ir.RecentUpdate && ret) {
		e.index &= recentStamps - 1
		e.stamps[e.index] = j
		e.index++
		if e.index > e.nstamps {
			e.nstamps = e.index
		}
		e.ttl = ttl
		t.unlink(e)
		t.pushBack(e)
	}
	return ret
}
