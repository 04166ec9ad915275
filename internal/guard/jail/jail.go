// Package jail turns security failures into ban decisions, like fail2ban's
// jails: MaxRetry failures from one address within FindTime ban it for
// BanTime; an address banned again within RecidiveWindow is banned
// BanFactor times longer each time (capped at MaxBanTime). Loopback, the
// host's own addresses and never-ban prefixes are never banned.
//
// The engine is pure: it does no I/O, reads no clock (every call carries
// its time) and decides only; putting a ban into the firewall is the
// caller's business. Memory is bounded: at most MaxRetry failure times per
// address and at most MaxTracked addresses.
package jail

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Config holds the thresholds. The zero value of a field means its default.
// It is a plain struct so a policy file can fill it.
type Config struct {
	FindTime time.Duration // window failures are counted in (default 10m)
	MaxRetry int           // failures within FindTime that ban (default 5)
	BanTime  time.Duration // first ban (default 1h)

	// Repeat offenders: a ban starting within RecidiveWindow (default 7 days)
	// of earlier bans of the same address lasts BanTime*BanFactor^n, n the
	// number of those earlier bans, at most MaxBanTime (default 7 days).
	// BanFactor 1 disables escalation (default 2).
	BanFactor      int
	RecidiveWindow time.Duration
	MaxBanTime     time.Duration

	NeverBan []netip.Prefix // trusted networks and explicit never-ban addresses
	Self     []netip.Addr   // the host's own addresses

	MaxTracked int // addresses remembered at most (default 100000)
}

// Defaults, as fail2ban's jail.conf.
const (
	DefaultFindTime       = 10 * time.Minute
	DefaultMaxRetry       = 5
	DefaultBanTime        = time.Hour
	DefaultBanFactor      = 2
	DefaultRecidiveWindow = 7 * 24 * time.Hour
	DefaultMaxBanTime     = 7 * 24 * time.Hour
	DefaultMaxTracked     = 100000
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
	case c.BanTime < 0:
		return fmt.Errorf("jail: bantime %v is negative", c.BanTime)
	case c.BanFactor < 0:
		return fmt.Errorf("jail: ban factor %d is negative", c.BanFactor)
	case c.MaxBanTime != 0 && c.MaxBanTime < c.BanTime:
		return fmt.Errorf("jail: maximum ban time %v is shorter than bantime %v", c.MaxBanTime, c.BanTime)
	case c.MaxTracked < 0:
		return fmt.Errorf("jail: max tracked %d is negative", c.MaxTracked)
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
	Reason   string        // for Ignored
	Failures int           // failures within FindTime of the newest one, this one included (for Counted and Ban)
	Until    time.Time     // for Ban and AlreadyBanned
	Duration time.Duration // for Ban
	Bans     int           // bans of this address within RecidiveWindow, this one included (for Ban)
}

type host struct {
	fails []time.Time // sorted, at most MaxRetry, within FindTime of the newest
	bans  []time.Time // starts of bans within RecidiveWindow
	until time.Time   // banned until
	last  time.Time   // newest failure
}

// Jail holds per-address state. It is not safe for concurrent use.
type Jail struct {
	cfg   Config
	hosts map[netip.Addr]*host
}

// New returns a jail with cfg (zero fields defaulted).
func New(cfg Config) (*Jail, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Jail{cfg: cfg, hosts: make(map[netip.Addr]*host)}, nil
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

// Fail records one failure from addr at time at.
func (j *Jail) Fail(at time.Time, addr netip.Addr) Decision {
	addr = addr.Unmap()
	if why, ok := j.Exempt(addr); ok {
		return Decision{Action: Ignored, Reason: why}
	}
	h := j.hosts[addr]
	if h == nil {
		if len(j.hosts) >= j.cfg.MaxTracked {
			j.evict(at)
		}
		h = &host{}
		j.hosts[addr] = h
	}
	if at.After(h.last) {
		h.last = at
	}
	if at.Before(h.until) {
		return Decision{Action: AlreadyBanned, Until: h.until}
	}
	// Keep the failures within FindTime of the newest one, sorted.
	i, _ := slices.BinarySearchFunc(h.fails, at, func(a, b time.Time) int { return a.Compare(b) })
	h.fails = slices.Insert(h.fails, i, at)
	newest := h.fails[len(h.fails)-1]
	cut := 0
	for cut < len(h.fails) && !h.fails[cut].After(newest.Add(-j.cfg.FindTime)) {
		cut++
	}
	if over := len(h.fails) - cut - j.cfg.MaxRetry; over > 0 {
		cut += over
	}
	h.fails = slices.Delete(h.fails, 0, cut)
	n := len(h.fails)
	if n < j.cfg.MaxRetry {
		return Decision{Action: Counted, Failures: n}
	}
	// Ban, escalated by the earlier bans still remembered.
	h.bans = slices.DeleteFunc(h.bans, func(t time.Time) bool { return !t.After(at.Add(-j.cfg.RecidiveWindow)) || t.After(at) })
	d := j.cfg.BanTime
	for range h.bans {
		if d >= j.cfg.MaxBanTime/time.Duration(max(j.cfg.BanFactor, 1)) {
			d = j.cfg.MaxBanTime
			break
		}
		d *= time.Duration(j.cfg.BanFactor)
	}
	d = min(d, j.cfg.MaxBanTime)
	h.bans = append(h.bans, at)
	h.until = at.Add(d)
	h.fails = h.fails[:0]
	return Decision{Action: Ban, Failures: n, Until: h.until, Duration: d, Bans: len(h.bans)}
}

// BannedUntil reports whether addr is banned at now, and until when.
func (j *Jail) BannedUntil(addr netip.Addr, now time.Time) (time.Time, bool) {
	h := j.hosts[addr.Unmap()]
	if h == nil || !now.Before(h.until) {
		return time.Time{}, false
	}
	return h.until, true
}

// Tracked returns the number of addresses the jail remembers.
func (j *Jail) Tracked() int { return len(j.hosts) }

// Prune forgets addresses that have nothing left to remember at now: no
// failure within FindTime, no ban running and no ban within RecidiveWindow.
// It returns how many were forgotten.
func (j *Jail) Prune(now time.Time) int {
	n := 0
	for a, h := range j.hosts {
		if j.idle(h, now) {
			delete(j.hosts, a)
			n++
		}
	}
	return n
}

func (j *Jail) idle(h *host, now time.Time) bool {
	if now.Before(h.until) || now.Sub(h.last) < j.cfg.FindTime {
		return false
	}
	for _, b := range h.bans {
		if now.Sub(b) < j.cfg.RecidiveWindow {
			return false
		}
	}
	return true
}

// evict makes room when MaxTracked addresses are remembered: first the idle
// ones, then (under a flood of distinct addresses) a tenth of those not
// banned, in map order. Banned addresses are never forgotten early.
func (j *Jail) evict(now time.Time) {
	if j.Prune(now) > 0 && len(j.hosts) < j.cfg.MaxTracked {
		return
	}
	target := j.cfg.MaxTracked - max(j.cfg.MaxTracked/10, 1)
	for a, h := range j.hosts {
		if len(j.hosts) <= target {
			return
		}
		if !now.Before(h.until) {
			delete(j.hosts, a)
		}
	}
}
