package backend

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// Set is one kernel set of a ruleset: its name in the kernel and its shape.
// The applied generation records them (state.json), so that the lists,
// guard and status find the sets without reading the rendered files.
type Set struct {
	// Name is the kernel's name: "banned4" (nftables), "sipwall-banned4"
	// (ipset).
	Name string `json:"name"`
	// List is the list the set holds (part of): "banned" for both
	// banned4 and banned-net4.
	List string `json:"list"`
	// IRName is the set of the IR it instantiates ("banned-net").
	IRName string `json:"ir_name"`
	// Family is ir.IPv4 or ir.IPv6.
	Family ir.Family `json:"family"`
	// Networks is true when the set holds networks as well as addresses.
	Networks bool `json:"networks,omitempty"`
	// Dynamic sets are filled from the packet path.
	Dynamic bool `json:"dynamic,omitempty"`
	// Static sets hold the policy's elements and nothing else: an apply
	// replaces their contents instead of carrying them over.
	Static bool `json:"static,omitempty"`
	// Timeout is the default lifetime of an entry (0: none).
	Timeout time.Duration `json:"timeout,omitempty"`
	// Size is the maximum number of entries.
	Size int `json:"size"`
}

// Entry is one address or network in a list.
type Entry struct {
	List   string
	Prefix netip.Prefix
	// Remaining is, as read, the time left before the kernel removes the
	// entry; as written, its timeout. 0 means none: never, or when
	// written, the set's default timeout.
	Remaining time.Duration
	Comment   string
}

// Addr is the entry as people write it: an address, or a network in CIDR.
func (e Entry) Addr() string { return FormatPrefix(e.Prefix) }

// FormatPrefix writes a single address without its /32 or /128.
func FormatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// FamilyOf is the family of p's address.
func FamilyOf(p netip.Prefix) ir.Family {
	if p.Addr().Unmap().Is4() {
		return ir.IPv4
	}
	return ir.IPv6
}

// SetStore reads and changes the lists. Every call is one transaction:
// all of it lands or, on error, nothing does (ipset: a full set refuses
// the entries from the first that does not fit).
type SetStore interface {
	// Read returns the entries of the given lists, both families, in no
	// particular order.
	Read(ctx context.Context, lists ...string) ([]Entry, error)
	// Add puts entries in. An entry already listed takes the new timeout
	// and comment; one inside a wider network already listed is left out
	// (a warning says so); listed entries inside a new network are
	// replaced by it. It returns how many went in.
	Add(ctx context.Context, entries []Entry) (added int, warnings []string, err error)
	// Delete takes entries out; entries not listed are ignored.
	Delete(ctx context.Context, entries []Entry) error
	// Replace makes entries the whole contents of list, both families.
	Replace(ctx context.Context, list string, entries []Entry) error
}

// SetsOf returns the sets of sets that hold list.
func SetsOf(sets []Set, list string) []Set {
	var out []Set
	for _, s := range sets {
		if s.List == list {
			out = append(out, s)
		}
	}
	return out
}

// SetFor returns the set that holds entries of list for p: of p's family
// and, when the list is kept in two sets, the one for networks or the one
// for addresses.
func SetFor(sets []Set, list string, p netip.Prefix) (Set, error) {
	f := FamilyOf(p)
	single := p.IsSingleIP()
	var first *Set
	for i := range sets {
		s := &sets[i]
		if s.List != list || s.Family != f {
			continue
		}
		if s.Networks == !single {
			return *s, nil // the set for this kind of entry
		}
		if first == nil {
			first = s
		}
	}
	switch {
	case first == nil:
		why := ""
		if f == ir.IPv6 {
			why = " (is ipv6 off in the policy?)"
		}
		return Set{}, fmt.Errorf("%s: the applied ruleset has no %s set for the %s list%s: %w", FormatPrefix(p), f, list, why, ErrNoSet)
	case !single && !first.Networks:
		return Set{}, fmt.Errorf("%s is a network; the %s list holds single addresses only", p, list)
	}
	// An address in a list whose one set holds networks too.
	return *first, nil
}

// Twin returns the other set holding the same list and family as s, if
// the list is kept in two (addresses in one, networks in the other).
func Twin(sets []Set, s Set) (Set, bool) {
	for _, t := range sets {
		if t.List == s.List && t.Family == s.Family && t.Name != s.Name {
			return t, true
		}
	}
	return Set{}, false
}

// Wider finds an entry of nets, of e's list, strictly wider than e that
// contains it.
func Wider(nets []Entry, e Entry) (Entry, bool) {
	for _, n := range nets {
		if n.List == e.List && n.Prefix.Bits() < e.Prefix.Bits() && n.Prefix.Contains(e.Prefix.Addr()) {
			return n, true
		}
	}
	return Entry{}, false
}

// Instances are the kernel sets of rs: one per IR set and family, named by
// name (the backend's naming of IR set irName for family f).
func Instances(rs *ir.Ruleset, name func(irName string, f ir.Family) string) []Set {
	var out []Set
	for _, s := range rs.Sets {
		for _, f := range []ir.Family{ir.IPv4, ir.IPv6} {
			if !s.Families.Has(f) || !rs.Families.Has(f) {
				continue
			}
			list := s.List
			if list == "" {
				list = s.Name
			}
			out = append(out, Set{
				Name: name(s.Name, f), List: list, IRName: s.Name, Family: f,
				Networks: s.Interval, Dynamic: s.Dynamic, Static: s.Static,
				Timeout: s.Timeout, Size: s.Size,
			})
		}
	}
	return out
}

// stampMark starts the time an entry was made, at the end of its comment
// (" @1764574500"): neither nftables elements nor ipset entries keep the
// time they were added, so sipwall writes it with the comment, and save
// and restore carry it along.
const stampMark = "@"

// StampComment appends t, the time the entry is made, to comment.
func StampComment(comment string, t time.Time) string {
	comment, _ = SplitStamp(comment)
	s := stampMark + strconv.FormatInt(t.Unix(), 10)
	if comment == "" {
		return s
	}
	return comment + " " + s
}

// SplitStamp returns comment without the time StampComment appended, and
// that time (zero when there is none).
func SplitStamp(comment string) (string, time.Time) {
	i := strings.LastIndex(comment, stampMark)
	if i < 0 || (i > 0 && comment[i-1] != ' ') {
		return comment, time.Time{}
	}
	digits := comment[i+len(stampMark):]
	if len(digits) < 9 || len(digits) > 11 {
		return comment, time.Time{}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return comment, time.Time{}
	}
	return strings.TrimSuffix(comment[:i], " "), time.Unix(n, 0).UTC()
}

// Outlives reports whether entry a, as read, stays listed longer than b,
// as written (Remaining 0: for ever).
func Outlives(a, b Entry) bool {
	return b.Remaining > 0 && (a.Remaining == 0 || a.Remaining > b.Remaining)
}

// Looker is a SetStore that finds the entries holding an address without
// reading whole sets.
type Looker interface {
	// Lookup returns the entries of lists that hold a (the address
	// itself, or a network containing it).
	Lookup(ctx context.Context, lists []string, a netip.Addr) ([]Entry, error)
}
