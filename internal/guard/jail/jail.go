// Package jail turns security failures into ban decisions, like fail2ban's
// jails: MaxRetry failures from one source within FindTime ban it for
// BanTime; a source banned again within RecidiveWindow of its previous ban
// is banned BanFactor times longer each time (capped at MaxBanTime).
// Loopback, the host's own addresses and never-ban prefixes are never
// banned. A source is an address, or with IPv6Prefix an IPv6 network (a
// /64 holds one host's addresses).
//
// The engine is pure: it does no I/O, reads no clock (every call carries
// its time) and decides only; putting a ban into the firewall is the
// caller's business (Batcher groups the bans of a short interval for one
// set-store transaction).
//
// Memory and time are bounded for a distributed attack: each tracked source
// costs EntryBytes(MaxRetry) bytes (about 70 with the default MaxRetry) in
// fixed-size slabs and an open-addressing index, at most MaxTracked sources
// are held, and every operation is O(1) amortised: sources live in two
// lists ordered by their deadline (not banned: by newest failure; banned:
// by ban start), so forgetting idle ones only looks at the list heads, and
// when MaxTracked is reached the least recently failing source not banned
// is forgotten (a banned one only if every tracked source is banned).
package jail

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"time"
)

// Config holds the thresholds. The zero value of a field means its default.
// It is a plain struct so a policy file can fill it.
type Config struct {
	FindTime time.Duration // window failures are counted in (default 10m)
	MaxRetry int           // failures within FindTime that ban (default 5)
	BanTime  time.Duration // first ban (default 1h)

	// Repeat offenders: a ban starting within RecidiveWindow (default 7 days)
	// of the previous ban of the same source lasts BanTime*BanFactor^n, n
	// the number of earlier bans in that chain, at most MaxBanTime (default
	// 7 days). BanFactor 1 disables escalation (default 2).
	BanFactor      int
	RecidiveWindow time.Duration
	MaxBanTime     time.Duration

	NeverBan []netip.Prefix // trusted networks and explicit never-ban addresses
	Self     []netip.Addr   // the host's own addresses

	// IPv6Prefix, when set (16 to 128), counts and bans IPv6 sources per
	// network of that length (64: a /64, the usual single host's
	// allocation); 0 or 128 counts each address.
	IPv6Prefix int

	MaxTracked int // sources remembered at most (default 2,097,152)
}

// Defaults, as fail2ban's jail.conf.
const (
	DefaultFindTime       = 10 * time.Minute
	DefaultMaxRetry       = 5
	DefaultBanTime        = time.Hour
	DefaultBanFactor      = 2
	DefaultRecidiveWindow = 7 * 24 * time.Hour
	DefaultMaxBanTime     = 7 * 24 * time.Hour
	DefaultMaxTracked     = 1 << 21

	// MaxMaxRetry bounds MaxRetry: failure times are kept per source.
	MaxMaxRetry = 1000
	// MaxMaxTracked bounds MaxTracked (slots are 32-bit).
	MaxMaxTracked = 1 << 30
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.FindTime == 0 {
		c.FindTime = DefaultFindTime
	}
	if c.MaxRetry == 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.BanTime == 0 {
		c.BanTime = DefaultBanTime
	}
	if c.BanFactor == 0 {
		c.BanFactor = DefaultBanFactor
	}
	if c.RecidiveWindow == 0 {
		c.RecidiveWindow = DefaultRecidiveWindow
	}
	if c.MaxBanTime == 0 {
		c.MaxBanTime = max(DefaultMaxBanTime, c.BanTime)
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = DefaultMaxTracked
	}
	return c
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.FindTime < 0:
		return fmt.Errorf("jail: findtime %v is negative", c.FindTime)
	case c.MaxRetry < 0:
		return fmt.Errorf("jail: maxretry %d is negative", c.MaxRetry)
	case c.MaxRetry > MaxMaxRetry:
		return fmt.Errorf("jail: maxretry %d is more than %d", c.MaxRetry, MaxMaxRetry)
	case c.BanTime < 0:
		return fmt.Errorf("jail: bantime %v is negative", c.BanTime)
	case c.BanFactor < 0:
		return fmt.Errorf("jail: ban factor %d is negative", c.BanFactor)
	case c.MaxBanTime != 0 && c.MaxBanTime < c.BanTime:
		return fmt.Errorf("jail: maximum ban time %v is shorter than bantime %v", c.MaxBanTime, c.BanTime)
	case c.BanFactor > 1000:
		return fmt.Errorf("jail: ban factor %d is more than 1000", c.BanFactor)
	case c.RecidiveWindow < 0:
		return fmt.Errorf("jail: recidive window %v is negative", c.RecidiveWindow)
	case c.MaxTracked < 0 || c.MaxTracked > MaxMaxTracked:
		return fmt.Errorf("jail: max tracked %d is not within 0-%d", c.MaxTracked, MaxMaxTracked)
	case c.IPv6Prefix != 0 && (c.IPv6Prefix < 16 || c.IPv6Prefix > 128):
		return fmt.Errorf("jail: IPv6 prefix length %d is not within 16-128", c.IPv6Prefix)
	}
	for _, p := range c.NeverBan {
		if !p.IsValid() {
			return errors.New("jail: invalid never-ban prefix")
		}
	}
	return nil
}

// Action is what a failure led to.
type Action uint8

// Actions.
const (
	Counted       Action = iota // counted, below the threshold
	Ban                         // the address is to be banned until Decision.Until
	Ignored                     // never banned (Decision.Reason says why)
	AlreadyBanned               // the address is banned already; not counted
)

func (a Action) String() string {
	switch a {
	case Ban:
		return "ban"
	case Ignored:
		return "ignored"
	case AlreadyBanned:
		return "already-banned"
	}
	return "counted"
}

// Decision is the outcome of one failure.
type Decision struct {
	Action   Action
	Prefix   netip.Prefix  // the source counted: the address (/32, /128) or its IPv6 network
	Reason   string        // for Ignored
	Failures int           // failures within FindTime of the newest one, this one included (for Counted and Ban)
	Until    time.Time     // for Ban and AlreadyBanned
	Duration time.Duration // for Ban
	Bans     int           // bans of this source in its recidive chain, this one included (for Ban)
}

// Times are kept as seconds since epoch in 32 bits (until 2136), a ban's
// end in nanoseconds.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func stamp(t time.Time) uint32 {
	s := t.Unix() - epoch
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) uint32 {
	s := (d + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), math.MaxUint32))
}

// entry is one tracked source: 48 bytes, plus MaxRetry 4-byte failure
// times in a parallel slab and 4 to 10.7 bytes of index (see EntryBytes).
type entry struct {
	key        [16]byte // the address (IPv4 mapped into IPv6) or the masked IPv6 network
	until      int64    // banned until, Unix nanoseconds
	prev, next uint32   // list links (0: none); next also links free slots
	last       uint32   // newest failure
	lastBan    uint32   // start of the newest ban
	bans       uint16   // bans in the current recidive chain
	nfail      uint16   // failure times held
	list       uint8    // listFree, listFresh or listBanned
}

const (
	listFree = iota
	listFresh
	listBanned

	chunkBits = 12 // slabs of 4096 entries: growing never copies
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// EntryBytes is the memory one tracked source costs with maxRetry: its
// entry, its failure times, and the index at its fullest (load 3/8 just
// after doubling; 8/3 slots of 4 bytes per source).
func EntryBytes(maxRetry int) int { return 48 + 4*maxRetry + 11 }

type list struct {
	head, tail uint32
	n          int
}

// Jail holds per-source state. It is not safe for concurrent use.
type Jail struct {
	cfg     Config
	findSec uint32 // FindTime in seconds
	recSec  uint32 // RecidiveWindow in seconds
	keepSec uint32 // a ban is remembered this long after it starts: max(RecidiveWindow, MaxBanTime)
	v6mask  [16]byte
	entries [][]entry
	fails   [][]uint32 // chunkSize*MaxRetry per slab, sorted per entry
	used    uint32     // slots handed out so far; slot 0 is never used
	free    uint32     // head of the free slots
	lists   [3]list    // by listFresh, listBanned
	seed    maphash.Seed
	slots   []uint32 // open addressing, linear probing; 0 is empty
	tracked int
	evicted int
}

// New returns a jail with cfg (zero fields defaulted).
func New(cfg Config) (*Jail, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	j := &Jail{
		cfg:     cfg,
		findSec: seconds(cfg.FindTime),
		recSec:  seconds(cfg.RecidiveWindow),
		keepSec: seconds(max(cfg.RecidiveWindow, cfg.MaxBanTime)),
		seed:    maphash.MakeSeed(),
		slots:   make([]uint32, 1024),
		used:    1,
	}
	bits := cfg.IPv6Prefix
	if bits == 0 {
		bits = 128
	}
	for i := range 16 {
		switch {
		case bits >= 8*(i+1):
			j.v6mask[i] = 0xff
		case bits > 8*i:
			j.v6mask[i] = ^byte(0xff >> (bits - 8*i))
		}
	}
	return j, nil
}

// Config returns the configuration in effect, defaults filled.
func (j *Jail) Config() Config { return j.cfg }

// Exempt reports whether addr is never banned, and why.
func (j *Jail) Exempt(addr netip.Addr) (string, bool) {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid address", true
	case addr.IsLoopback():
		return "loopback", true
	case addr.IsUnspecified():
		return "unspecified address", true
	}
	for _, s := range j.cfg.Self {
		if s.Unmap() == addr {
			return "own address", true
		}
	}
	for _, p := range j.cfg.NeverBan {
		if p.Contains(addr) {
			return "never-ban " + p.String(), true
		}
	}
	return "", false
}

// source returns the key of an unmapped address and the prefix it stands for.
func (j *Jail) source(addr netip.Addr) ([16]byte, netip.Prefix) {
	k := addr.As16()
	if addr.Is4() {
		return k, netip.PrefixFrom(addr, 32)
	}
	for i := range k {
		k[i] &= j.v6mask[i]
	}
	bits := j.cfg.IPv6Prefix
	if bits == 0 {
		bits = 128
	}
	return k, netip.PrefixFrom(netip.AddrFrom16(k), bits)
}

// Fail records one failure from addr at time at.
func (j *Jail) Fail(at time.Time, addr netip.Addr) Decision {
	addr = addr.Unmap()
	if why, ok := j.Exempt(addr); ok {
		return Decision{Action: Ignored, Reason: why}
	}
	now := stamp(at)
	j.expire(now, 2)
	k, prefix := j.source(addr)
	pos, i := j.find(&k)
	if i == 0 {
		if j.tracked >= j.cfg.MaxTracked {
			j.evict()
			pos, _ = j.find(&k)
		}
		i = j.alloc()
		e := j.at(i)
		*e = entry{key: k, last: now}
		j.slots[pos] = i
		j.tracked++
		j.push(listFresh, i)
		j.grow()
	}
	e := j.at(i)
	if now > e.last {
		e.last = now
	}
	if at.UnixNano() < e.until {
		return Decision{Action: AlreadyBanned, Prefix: prefix, Until: time.Unix(0, e.until).In(at.Location())}
	}
	if e.list == listFresh {
		j.unlink(i)
		j.push(listFresh, i)
	}
	n := j.record(i, e, now)
	if n < j.cfg.MaxRetry {
		return Decision{Action: Counted, Prefix: prefix, Failures: n}
	}
	// Ban, escalated along the chain of bans each within RecidiveWindow of
	// the one before.
	chain := 0
	if e.bans > 0 && now >= e.lastBan && now-e.lastBan < j.recSec {
		chain = int(e.bans)
	}
	d := j.cfg.BanTime
	for range chain {
		if d >= j.cfg.MaxBanTime/time.Duration(max(j.cfg.BanFactor, 1)) {
			d = j.cfg.MaxBanTime
			break
		}
		d *= time.Duration(j.cfg.BanFactor)
	}
	d = min(d, j.cfg.MaxBanTime)
	e.bans = uint16(min(chain+1, math.MaxUint16))
	e.lastBan = now
	until := at.Add(d)
	e.until = until.UnixNano()
	e.nfail = 0
	j.unlink(i)
	j.push(listBanned, i)
	return Decision{Action: Ban, Prefix: prefix, Failures: n, Until: until, Duration: d, Bans: chain + 1}
}

// record inserts a failure time into the entry's sorted times, drops those
// more than FindTime before the newest and the oldest beyond MaxRetry, and
// returns how many are held.
func (j *Jail) record(i uint32, e *entry, now uint32) int {
	m := j.cfg.MaxRetry
	off := int(i&chunkMask) * m
	f := j.fails[i>>chunkBits][off : off+m]
	n := int(e.nfail)
	p := n
	for p > 0 && f[p-1] > now {
		p--
	}
	if n == m { // full: the oldest goes (or the new one, if it is the oldest)
		if p == 0 {
			return n
		}
		copy(f[:p-1], f[1:p])
		p--
		n--
	}
	copy(f[p+1:n+1], f[p:n])
	f[p] = now
	n++
	newest := f[n-1]
	cut := 0
	for cut < n && newest-f[cut] >= j.findSec {
		cut++
	}
	copy(f, f[cut:n])
	n -= cut
	e.nfail = uint16(n)
	return n
}

// Succeeded records that addr authenticated successfully at time at: the
// failures counted against its source are forgotten (a phone with one
// mistyped line still registers with the others), but a ban is not
// lifted, and its recidive chain is kept. It reports whether a count was
// reset.
func (j *Jail) Succeeded(at time.Time, addr netip.Addr) bool {
	k, _ := j.source(addr.Unmap())
	_, i := j.find(&k)
	if i == 0 {
		return false
	}
	e := j.at(i)
	if at.UnixNano() < e.until || e.nfail == 0 {
		return false
	}
	e.nfail = 0
	return true
}

// BannedUntil reports whether addr is banned at now, and until when.
func (j *Jail) BannedUntil(addr netip.Addr, now time.Time) (time.Time, bool) {
	k, _ := j.source(addr.Unmap())
	_, i := j.find(&k)
	if i == 0 || now.UnixNano() >= j.at(i).until {
		return time.Time{}, false
	}
	return time.Unix(0, j.at(i).until).In(now.Location()), true
}

// Tracked returns the number of sources the jail remembers.
func (j *Jail) Tracked() int { return j.tracked }

// Banned returns the number of sources remembered for a ban (running, or
// within the recidive window).
func (j *Jail) Banned() int { return j.lists[listBanned].n }

// Prune forgets sources that have nothing left to remember at now: no
// failure within FindTime, no ban running and no ban within
// max(RecidiveWindow, MaxBanTime). It returns how many were forgotten. It
// looks only at the heads of the lists, so a source whose newest failure
// arrived out of order may be forgotten a little later.
func (j *Jail) Prune(now time.Time) int {
	return j.expire(stamp(now), -1)
}

// PruneAtMost is Prune forgetting at most n sources of each list, for a
// caller that holds a lock and lets others in between rounds. It returns
// how many were forgotten; fewer than n means none is left to forget.
func (j *Jail) PruneAtMost(now time.Time, n int) int {
	return j.expire(stamp(now), max(n, 1))
}

// expire forgets idle sources at the heads of the lists, at most limit from
// each (all if negative): called with a small limit on every failure it
// keeps the work per failure O(1) while freeing at least as fast as
// sources arrive.
func (j *Jail) expire(now uint32, limit int) int {
	n := 0
	for k := 0; k != limit; k++ {
		i := j.lists[listFresh].head
		if i == 0 || now < j.at(i).last || now-j.at(i).last < j.findSec {
			break
		}
		j.drop(i)
		n++
	}
	nowNano := (int64(now) + epoch) * int64(time.Second)
	for k := 0; k != limit; k++ {
		i := j.lists[listBanned].head
		if i == 0 {
			break
		}
		e := j.at(i)
		if now < e.lastBan || now-e.lastBan < j.keepSec || nowNano < e.until {
			break
		}
		if now >= e.last && now-e.last >= j.findSec {
			j.drop(i)
			n++
			continue
		}
		// Failing again after its ban and its recidive window: counted
		// afresh.
		e.bans = 0
		j.unlink(i)
		j.push(listFresh, i)
	}
	return n
}

// evict makes room for one more source: the least recently failing one not
// banned, or if every tracked source is banned, the oldest ban (its kernel
// entry keeps its own timeout; only its recidive history is lost).
func (j *Jail) evict() {
	i := j.lists[listFresh].head
	if i == 0 {
		i = j.lists[listBanned].head
	}
	if i != 0 {
		j.drop(i)
		j.evicted++
	}
}

// Evicted returns how many sources were forgotten early because MaxTracked
// were held.
func (j *Jail) Evicted() int { return j.evicted }

func (j *Jail) at(i uint32) *entry { return &j.entries[i>>chunkBits][i&chunkMask] }

func (j *Jail) alloc() uint32 {
	if i := j.free; i != 0 {
		j.free = j.at(i).next
		return i
	}
	i := j.used
	j.used++
	if int(i>>chunkBits) == len(j.entries) {
		j.entries = append(j.entries, make([]entry, chunkSize))
		j.fails = append(j.fails, make([]uint32, chunkSize*j.cfg.MaxRetry))
	}
	return i
}

// drop forgets entry i: out of its list, out of the index, onto the free list.
func (j *Jail) drop(i uint32) {
	e := j.at(i)
	j.unlink(i)
	pos, _ := j.find(&e.key)
	j.remove(pos)
	*e = entry{next: j.free}
	j.free = i
	j.tracked--
}

func (j *Jail) push(l uint8, i uint32) {
	e := j.at(i)
	e.list, e.prev, e.next = l, j.lists[l].tail, 0
	if e.prev != 0 {
		j.at(e.prev).next = i
	} else {
		j.lists[l].head = i
	}
	j.lists[l].tail = i
	j.lists[l].n++
}

func (j *Jail) unlink(i uint32) {
	e := j.at(i)
	l := &j.lists[e.list]
	if e.prev != 0 {
		j.at(e.prev).next = e.next
	} else {
		l.head = e.next
	}
	if e.next != 0 {
		j.at(e.next).prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = 0, 0
	l.n--
}

// The index maps a key to its slot with open addressing and linear
// probing, hashed with a random seed so that chosen addresses cannot make
// the probes long.

func (j *Jail) home(k *[16]byte) int {
	return int(maphash.Comparable(j.seed, *k)) & (len(j.slots) - 1)
}

// find returns the position of k in the index and its slot, or the empty
// position where it would go and 0.
func (j *Jail) find(k *[16]byte) (int, uint32) {
	mask := len(j.slots) - 1
	for p := j.home(k); ; p = (p + 1) & mask {
		s := j.slots[p]
		if s == 0 || j.at(s).key == *k {
			return p, s
		}
	}
}

// remove empties position p, moving later entries of the probe run back
// (no tombstones, so lookups stay short).
func (j *Jail) remove(p int) {
	mask := len(j.slots) - 1
	q := p
	for {
		q = (q + 1) & mask
		s := j.slots[q]
		if s == 0 {
			break
		}
		h := j.home(&j.at(s).key)
		// Move s to p unless its home lies cyclically in (p, q].
		if (q > p && (h <= p || h > q)) || (q < p && h <= p && h > q) {
			j.slots[p] = s
			p = q
		}
	}
	j.slots[p] = 0
}

// grow doubles the index when it is 3/4 full.
func (j *Jail) grow() {
	if j.tracked*4 < len(j.slots)*3 {
		return
	}
	old := j.slots
	j.slots = make([]uint32, 2*len(old))
	mask := len(j.slots) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		p := j.home(&j.at(s).key)
		for j.slots[p] != 0 {
			p = (p + 1) & mask
		}
		j.slots[p] = s
	}
}
