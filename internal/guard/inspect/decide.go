package inspect

import (
	"net/netip"
	"time"
)

// Hold is how long guard acts on no further verdict about a source it has
// just admitted or banned: the packets of that source that were already on
// their way to nflog when the set was written are inspected too, and would
// otherwise admit or ban it a second time.
const Hold = 5 * time.Second

// Decisions remembers the sources decided in the last Hold. It is what
// sipwall guard runs between the inspector's verdicts and the kernel sets,
// and what replay runs to model it. Not safe for concurrent use.
type Decisions struct {
	until map[netip.Addr]time.Time
}

// NewDecisions returns an empty record.
func NewDecisions() *Decisions {
	return &Decisions{until: map[netip.Addr]time.Time{}}
}

// Take reports whether a verdict about a at now is to be acted on: it is
// not when a was decided less than Hold ago. A verdict acted on starts a
// new Hold for a.
func (d *Decisions) Take(a netip.Addr, now time.Time) bool {
	if until, ok := d.until[a]; ok && now.Before(until) {
		return false
	}
	d.until[a] = now.Add(Hold)
	return true
}

// Prune forgets the sources whose Hold has ended by now.
func (d *Decisions) Prune(now time.Time) {
	for a, until := range d.until {
		if now.After(until) {
			delete(d.until, a)
		}
	}
}

// Len is the number of sources remembered.
func (d *Decisions) Len() int { return len(d.until) }
