package crowdsec

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Ban is one address or network to hold in the fleet list until Until.
type Ban struct {
	Prefix netip.Prefix
	Until  time.Time
	// Reason names the decision for `sipwall why`: origin, scenario, id.
	Reason string
}

// Skip is a decision that is not enforced, and why.
type Skip struct {
	Decision Decision
	Why      string
}

// Change is what one pull asks of the kernel, to be written in one
// transaction. Full means Set is the whole list (a startup pull): the list
// is replaced by it.
type Change struct {
	Full    bool
	Set     []Ban
	Del     []netip.Prefix
	Skipped []Skip
	// Took is how long the pull's parts took (set by Bouncer.Once).
	Took Timing
}

// Timing splits a pull's time: the LAPI's answer received and decoded, the
// picture updated, the kernel written.
type Timing struct{ Pull, Picture, Kernel time.Duration }

// Empty reports whether the change asks nothing of the kernel.
func (c *Change) Empty() bool { return !c.Full && len(c.Set) == 0 && len(c.Del) == 0 }

// Protected says whether a prefix must never be banned (trusted, allowed,
// the host's own addresses, the SSH client) and why; "" means it may be.
type Protected func(netip.Prefix) string

// held is one active decision, kept small: a fleet holds 100,000s.
type held struct {
	prefix netip.Prefix
	until  time.Time
	id     int64
	// src names the decision's origin and scenario, interned.
	src *source
}

// source is a decision's origin and scenario; one per distinct pair.
type source struct{ origin, scenario string }

func (h held) reason() string {
	return fmt.Sprintf("crowdsec %s by %s (decision %d)", h.src.scenario, h.src.origin, h.id)
}

// Decisions is the bouncer's picture of the LAPI: every active ban decision
// by id, and what is enforced for each prefix. LAPI may repeat a deletion
// in two pulls, keep several decisions for one value, or extend one with a
// new decision: a prefix is held until the latest expiry of its decisions,
// and released when the last one goes.
type Decisions struct {
	byID map[int64]held
	// byPrefix holds a prefix's decision ids: almost always one.
	byPrefix map[netip.Prefix][]int64
	sources  map[source]*source
	// enforced is what the kernel was last told: prefix -> until.
	enforced map[netip.Prefix]time.Time
	protect  Protected
	// Slack is how much later an expiry must be before the kernel timeout
	// is refreshed (LAPI's durations shrink between pulls; default 1 s).
	Slack time.Duration
}

// NewDecisions starts an empty picture; protect may be nil.
func NewDecisions(protect Protected) *Decisions {
	d := &Decisions{protect: protect, Slack: time.Second}
	d.reset()
	return d
}

func (d *Decisions) reset() {
	d.byID = map[int64]held{}
	d.byPrefix = map[netip.Prefix][]int64{}
	d.sources = map[source]*source{}
	d.enforced = map[netip.Prefix]time.Time{}
}

// Len is the number of prefixes enforced.
func (d *Decisions) Len() int { return len(d.enforced) }

// Lookup returns the decisions holding exactly p, for `why`.
func (d *Decisions) Lookup(p netip.Prefix) []Ban {
	var out []Ban
	for _, id := range d.byPrefix[p] {
		h := d.byID[id]
		out = append(out, Ban{Prefix: h.prefix, Until: h.until, Reason: h.reason()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.After(out[j].Until) })
	return out
}

// ParseValue turns a decision's scope and value into a prefix. Scopes are
// compared without case (LAPI 1.4 spells them Ip and Range); a range with
// host bits set is masked.
func ParseValue(scope, value string) (netip.Prefix, error) {
	value = strings.TrimSpace(value)
	switch strings.ToLower(scope) {
	case "ip":
		if strings.Contains(value, "/") {
			// cscli import stores a network given without the right
			// scope as an Ip decision: enforced as the network it is.
			return ParseValue("range", value)
		}
		a, err := netip.ParseAddr(value)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("value %q is not an address", value)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	case "range":
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("value %q is not a network", value)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	return netip.Prefix{}, fmt.Errorf("scope %q is not enforced (only Ip and Range)", scope)
}

// Lookup asks the LAPI for the active decisions on one scope and value
// (GET /v1/decisions); the bouncer uses it when a pull's deletion leaves
// the picture unsure.
type Lookup func(scope, value string) ([]Decision, error)

// Apply folds one pull into the picture and returns what the kernel must
// do. startup replaces everything (a first pull, or a resync after the LAPI
// was away).
//
// LAPI 1.4 reports a deletion once per value, not per decision: deleting
// both of an address's decisions shows only one of them in the stream.
// When a deletion leaves other decisions for its value in the picture,
// lookup (when not nil) asks the LAPI what is really still active; without
// it, or when it fails, the value is lifted: a ban the operator deleted
// must go (a later pull or resync brings back one that should stay).
func (d *Decisions) Apply(s *Stream, startup bool, now time.Time, lookup Lookup) *Change {
	ch := &Change{Full: startup}
	touched := map[netip.Prefix]bool{}
	unsure := map[netip.Prefix]Decision{}
	if startup {
		d.reset()
		n := len(s.New)
		d.byID = make(map[int64]held, n)
		d.byPrefix = make(map[netip.Prefix][]int64, n)
		d.enforced = make(map[netip.Prefix]time.Time, n)
	}
	for _, dec := range s.Deleted {
		p, err := ParseValue(dec.Scope, dec.Value)
		if err != nil {
			continue
		}
		if h, ok := d.byID[dec.ID]; ok {
			p = h.prefix
			d.drop(dec.ID)
		}
		if len(d.byPrefix[p]) > 0 {
			unsure[p] = dec
		}
		touched[p] = true
	}
	for _, dec := range s.New {
		p, dur, why := d.admit(dec)
		if why != "" {
			ch.Skipped = append(ch.Skipped, Skip{dec, why})
			continue
		}
		if dur <= 0 {
			continue // already over
		}
		d.hold(dec, p, now.Add(dur))
		if !startup {
			delete(unsure, p)
			touched[p] = true
		}
	}
	for p, dec := range unsure {
		var active []Decision
		var err error
		if lookup != nil {
			active, err = lookup(dec.Scope, dec.Value)
		}
		for _, id := range append([]int64(nil), d.byPrefix[p]...) {
			d.drop(id)
		}
		if lookup == nil || err != nil {
			continue
		}
		for _, a := range active {
			if q, dur, why := d.admit(a); why == "" && dur > 0 && q == p {
				d.hold(a, p, now.Add(dur))
			}
		}
	}
	if startup {
		ch.Set = make([]Ban, 0, len(d.byPrefix))
		for p := range d.byPrefix {
			b := d.want(p)
			d.enforced[p] = b.Until
			ch.Set = append(ch.Set, b)
		}
		sortBans(ch.Set)
		return ch
	}
	for p := range touched {
		cur, was := d.enforced[p]
		if len(d.byPrefix[p]) == 0 {
			if was {
				delete(d.enforced, p)
				ch.Del = append(ch.Del, p)
				if !p.IsSingleIP() {
					// The kernel's list folds an address into a network
					// that holds it: lifting the network must put back
					// what is still banned inside it.
					for q := range d.enforced {
						if q.Bits() > p.Bits() && p.Contains(q.Addr()) && !touched[q] {
							ch.Set = append(ch.Set, d.want(q))
						}
					}
				}
			}
			continue
		}
		b := d.want(p)
		// A refresh when the expiry moves either way: later (extended) or
		// earlier (the longest decision was deleted, a shorter one remains).
		if was && absDur(b.Until.Sub(cur)) <= d.Slack {
			continue
		}
		d.enforced[p] = b.Until
		ch.Set = append(ch.Set, b)
	}
	sortBans(ch.Set)
	sort.Slice(ch.Del, func(i, j int) bool { return lessPrefix(ch.Del[i], ch.Del[j]) })
	return ch
}

// admit checks a decision: its prefix and remaining duration, or why it is
// not enforced.
func (d *Decisions) admit(dec Decision) (netip.Prefix, time.Duration, string) {
	if !strings.EqualFold(dec.Type, "ban") {
		return netip.Prefix{}, 0, fmt.Sprintf("type %q is reported, not enforced (only ban)", dec.Type)
	}
	p, err := ParseValue(dec.Scope, dec.Value)
	if err != nil {
		return netip.Prefix{}, 0, err.Error()
	}
	dur, err := time.ParseDuration(dec.Duration)
	if err != nil {
		return netip.Prefix{}, 0, fmt.Sprintf("duration %q is not a duration", dec.Duration)
	}
	if d.protect != nil && dur > 0 {
		if why := d.protect(p); why != "" {
			return netip.Prefix{}, 0, why
		}
	}
	return p, dur, ""
}

func (d *Decisions) hold(dec Decision, p netip.Prefix, until time.Time) {
	if old, ok := d.byID[dec.ID]; ok && old.prefix != p {
		d.drop(dec.ID)
	}
	key := source{dec.Origin, dec.Scenario}
	src := d.sources[key]
	if src == nil {
		src = &key
		d.sources[key] = src
	}
	_, known := d.byID[dec.ID]
	d.byID[dec.ID] = held{prefix: p, until: until, id: dec.ID, src: src}
	if !known || !containsID(d.byPrefix[p], dec.ID) {
		d.byPrefix[p] = append(d.byPrefix[p], dec.ID)
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (d *Decisions) drop(id int64) {
	h, ok := d.byID[id]
	if !ok {
		return
	}
	delete(d.byID, id)
	ids := d.byPrefix[h.prefix]
	for i, x := range ids {
		if x == id {
			ids = append(ids[:i:i], ids[i+1:]...)
			break
		}
	}
	if len(ids) == 0 {
		delete(d.byPrefix, h.prefix)
	} else {
		d.byPrefix[h.prefix] = ids
	}
}

// want is the ban a prefix needs: until the latest of its decisions, named
// by that decision.
func (d *Decisions) want(p netip.Prefix) Ban {
	var best held
	for _, id := range d.byPrefix[p] {
		h := d.byID[id]
		if best.src == nil || h.until.After(best.until) || (h.until.Equal(best.until) && id > best.id) {
			best = h
		}
	}
	return Ban{Prefix: p, Until: best.until, Reason: best.reason()}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func sortBans(bs []Ban) {
	sort.Slice(bs, func(i, j int) bool { return lessPrefix(bs[i].Prefix, bs[j].Prefix) })
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}
