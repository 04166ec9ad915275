// Package lists manages sipwall's dynamic lists in the kernel: the banned,
// allowed, admitted, scanners and trapped lists. It bans and unbans
// addresses and networks in one transaction, deletes a banned source's
// conntrack flows, saves the lists with their remaining timeouts to a
// checksummed file and restores them, and explains the ruleset's counters.
// What it does to the kernel goes through the applied backend's set store
// (package backend); it knows no set names.
package lists

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// Names are the dynamic lists, in the order they are shown.
var Names = []string{compile.SetBanned, compile.SetScanners, compile.SetTrapped, compile.SetAnswered, compile.SetAdmitted, compile.SetAllowed}

// about says in words what each list is.
var about = map[string]string{
	compile.SetBanned:   "banned by hand or by guard: every port",
	compile.SetScanners: "SIP scanners (user-agent signature): every port",
	compile.SetTrapped:  "port scanners caught by a trap port: every port",
	compile.SetAnswered: "sources that collected too many failure answers from the PBX (sip.answers): every port",
	compile.SetAdmitted: "sources admitted to SIP by their knock",
	compile.SetAllowed:  "sources admitted to SIP by hand",
}

// About says what list name is for ("" for an unknown list).
func About(name string) string {
	if name == compile.SetFleet {
		return "banned by the fleet (CrowdSec decisions pulled by guard): every port"
	}
	if f, ok := strings.CutPrefix(name, compile.FeedPrefix); ok {
		return "on the " + f + " blocklist feed (fetched by guard): every port"
	}
	return about[name]
}

// fed reports whether list is filled by guard from outside the host: the
// fleet list and the feeds' lists. They exist when the policy has them.
func fed(list string) bool {
	return list == compile.SetFleet || strings.HasPrefix(list, compile.FeedPrefix)
}

// CheckList returns an error unless name is one of the dynamic lists or a
// fed list (fleet, feed-NAME).
func CheckList(name string) error {
	if fed(name) && len(name) <= len(compile.FeedPrefix)+16 {
		return nil
	}
	for _, n := range Names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("%q is not a list (lists: %s)", name, strings.Join(Names, ", "))
}

// Entry is one address or network in a list.
type Entry = backend.Entry

// FormatPrefix writes a single address without its /32 or /128.
func FormatPrefix(p netip.Prefix) string { return backend.FormatPrefix(p) }

// Item is one address or network to put in a list.
type Item struct {
	Prefix netip.Prefix
	// For is how long it stays; 0 means until removed.
	For     time.Duration
	Comment string
}

// ParseItem parses an address or a network for list; it refuses networks
// with host bits set and /0. (Whether the list takes networks is the
// applied ruleset's to say: Add refuses them where it does not.)
func ParseItem(list, s string) (netip.Prefix, error) {
	p, err := policy.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("%q is every address: refusing to put it in a list", s)
	}
	return p, nil
}

// MaxFor returns the longest --for backend n's sets accept.
func MaxFor(n backend.Name) time.Duration {
	be, err := backend.Open(n, backend.Host{})
	if err != nil {
		return 0
	}
	return be.MaxTimeout()
}

// CheckFor validates a --for duration for backend n.
func CheckFor(n backend.Name, d time.Duration) error {
	return checkFor(n, MaxFor(n), d)
}

func checkFor(n backend.Name, max, d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < time.Second:
		return fmt.Errorf("%s is shorter than the kernel's 1 s resolution", d)
	case d%time.Second != 0:
		return fmt.Errorf("%s is not a whole number of seconds", d)
	case max > 0 && d > max:
		return fmt.Errorf("%s is longer than the %s backend allows (%s, about %d days); leave --for out to ban until unbanned",
			d, n, max, int(max/(24*time.Hour)))
	}
	return nil
}

// ErrNothingApplied is returned when no ruleset has been applied.
var ErrNothingApplied = apply.ErrNothingApplied

// Store reads and changes the lists of the applied ruleset.
type Store struct {
	// Backend is the applied backend: its counters, conntrack, limits
	// (nil: none of those, as with a fake set store in tests).
	Backend backend.Backend
	// Sets are the applied generation's sets.
	Sets []backend.Set
	// Kernel is the set store every change goes through.
	Kernel backend.SetStore
	// StateDir holds the lock that serialises changes with other sipwall
	// processes ("" takes no lock).
	StateDir string
	// LockWait is how long to wait for another sipwall (default 10 s).
	LockWait time.Duration
	// Rules are the applied ruleset's rules as the kernel lists them, with
	// their kinds: stats maps the kernel's counters to them.
	Rules []ir.RuleRef
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Open returns the Store of the ruleset applied according to stateDir,
// acting on host h.
func Open(ctx context.Context, stateDir string, h backend.Host) (*Store, error) {
	st, err := apply.LoadState(stateDir)
	if err != nil {
		return nil, err
	}
	if st.Current == nil {
		return nil, ErrNothingApplied
	}
	be, err := backend.Open(st.Current.Backend, h)
	if err != nil {
		return nil, err
	}
	m := &apply.Manager{Host: h, StateDir: stateDir}
	sets, err := m.CurrentSets(ctx, st.Current)
	if err != nil {
		return nil, err
	}
	return &Store{Backend: be, Sets: sets, Kernel: be.Store(sets), StateDir: stateDir, Rules: st.Current.Rules}, nil
}

// Name is the applied backend's name ("" without one).
func (s *Store) Name() backend.Name {
	if s.Backend == nil {
		return ""
	}
	return s.Backend.Name()
}

func (s *Store) maxTimeout() time.Duration {
	if s.Backend == nil {
		return 0
	}
	return s.Backend.MaxTimeout()
}

// checkSets refuses entries whose set the applied ruleset lacks, before
// anything changes.
func (s *Store) checkSets(entries []Entry) error {
	for _, e := range entries {
		if _, err := backend.SetFor(s.Sets, e.List, e.Prefix); err != nil {
			if errors.Is(err, backend.ErrNoSet) {
				return fmt.Errorf("%w; nothing changed", err)
			}
			return err
		}
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) lock() (func(), error) {
	if s.StateDir == "" {
		return func() {}, nil
	}
	wait := s.LockWait
	if wait == 0 {
		wait = 10 * time.Second
	}
	return apply.Lock(s.StateDir, wait)
}

// List returns the entries of the given lists (every list when none),
// sorted by list, then address; their comments without the time sipwall
// writes with them (Find returns it).
func (s *Store) List(ctx context.Context, lists ...string) ([]Entry, error) {
	if len(lists) == 0 {
		lists = s.lists()
	}
	for _, l := range lists {
		if err := CheckList(l); err != nil {
			return nil, err
		}
	}
	es, err := s.read(ctx, lists...)
	for i := range es {
		es[i].Comment, _ = backend.SplitStamp(es[i].Comment)
	}
	return es, err
}

// read is List with the comments as the kernel holds them: with the time
// sipwall writes at their end.
func (s *Store) read(ctx context.Context, lists ...string) ([]Entry, error) {
	es, err := s.Kernel.Read(ctx, lists...)
	if err != nil {
		return nil, err
	}
	sortEntries(es)
	return es, nil
}

func sortEntries(es []Entry) {
	byList := map[string][]Entry{}
	for _, e := range es {
		byList[e.List] = append(byList[e.List], e)
	}
	var fedLists []string
	for l := range byList {
		if fed(l) {
			fedLists = append(fedLists, l)
		}
	}
	sort.Strings(fedLists)
	order := append(append([]string{}, Names...), fedLists...)
	es = es[:0]
	for _, l := range order {
		b := byList[l]
		slices.SortFunc(b, func(x, y Entry) int {
			if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
				return c
			}
			return x.Prefix.Bits() - y.Prefix.Bits()
		})
		es = append(es, b...)
		delete(byList, l)
	}
	for _, b := range byList { // lists of no known kind, last
		es = append(es, b...)
	}
}

// Result says what a change did.
type Result struct {
	// Added and Removed count the entries put in and taken out.
	Added, Removed int
	// Covered lists items left out because a wider entry already holds them.
	Covered []string
	// Flows is the number of conntrack flows deleted.
	Flows int
	// Warnings are things done differently than asked.
	Warnings []string
	// Kept lists the bans left as they were because they last longer.
	Kept []string
}

// longer takes out of items those banned already for longer, and says so.
func (s *Store) longer(ctx context.Context, items []Item) ([]Item, []string, error) {
	timed := false
	for _, it := range items {
		timed = timed || it.For > 0
	}
	if !timed {
		return items, nil, nil
	}
	have, err := s.Kernel.Read(ctx, compile.SetBanned)
	if err != nil {
		return nil, nil, err
	}
	byPrefix := make(map[netip.Prefix]Entry, len(have))
	for _, h := range have {
		byPrefix[h.Prefix] = h
	}
	out := items[:0:0]
	var kept []string
	for _, it := range items {
		h, ok := byPrefix[it.Prefix.Masked()]
		if ok && backend.Outlives(h, Entry{Remaining: it.For}) {
			left := "until removed"
			if h.Remaining > 0 {
				left = "for " + h.Remaining.Truncate(time.Second).String() + " more"
			}
			kept = append(kept, fmt.Sprintf("%s stays banned %s: a ban never shortens a longer one", h.Addr(), left))
			continue
		}
		out = append(out, it)
	}
	return out, kept, nil
}

// Ban puts items in the banned list in one transaction and deletes the
// conntrack flows of the banned sources, so that an established SIP flow
// stops too.
//
// A ban never shortens a longer one: an address or network banned already
// for longer (or until removed) keeps its ban, and Result.Kept says so; the
// addresses inside a new network that are banned for longer keep theirs
// too (the backend keeps them beside the network).
func (s *Store) Ban(ctx context.Context, items []Item) (*Result, error) {
	items, kept, err := s.longer(ctx, items)
	if err != nil {
		return nil, err
	}
	res, err := s.Add(ctx, compile.SetBanned, items)
	if err != nil {
		return nil, err
	}
	res.Kept = kept
	prefixes := make([]netip.Prefix, len(items))
	for i, it := range items {
		prefixes[i] = it.Prefix
	}
	if s.Backend == nil {
		return res, nil
	}
	n, err := s.Backend.ForgetFlows(ctx, prefixes)
	res.Flows = n
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("banned, but deleting their conntrack flows failed: %v", err))
	}
	return res, nil
}

// Allow puts items in the allowed list (SIP admitted without the knock).
func (s *Store) Allow(ctx context.Context, items []Item) (*Result, error) {
	return s.Add(ctx, compile.SetAllowed, items)
}

// Unban removes prefixes from the banned list and, for single addresses,
// from the scanners, trapped and answered lists too (those the applied
// ruleset has).
func (s *Store) Unban(ctx context.Context, prefixes []netip.Prefix) (*Result, error) {
	return s.Remove(ctx, s.BanLists(), prefixes)
}

// BanLists are the lists of bans sipwall makes on this host, those the
// applied ruleset has: banned, scanners, trapped, answered.
func (s *Store) BanLists() []string {
	var out []string
	for _, l := range []string{compile.SetBanned, compile.SetScanners, compile.SetTrapped, compile.SetAnswered} {
		if len(backend.SetsOf(s.Sets, l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// Disallow removes prefixes from the allowed list.
func (s *Store) Disallow(ctx context.Context, prefixes []netip.Prefix) (*Result, error) {
	return s.Remove(ctx, []string{compile.SetAllowed}, prefixes)
}

// Add puts items in list in one transaction. An item already listed takes
// the new timeout and comment; an item inside a wider entry already listed
// is left out (Result.Covered); narrower entries inside a new network are
// replaced by it. On error nothing changed.
func (s *Store) Add(ctx context.Context, list string, items []Item) (*Result, error) {
	if err := CheckList(list); err != nil {
		return nil, err
	}
	entries := make([]Entry, 0, len(items))
	for _, it := range items {
		if !it.Prefix.IsValid() {
			return nil, fmt.Errorf("lists: invalid address")
		}
		if err := checkFor(s.Name(), s.maxTimeout(), it.For); err != nil {
			return nil, fmt.Errorf("%s: --for: %w", FormatPrefix(it.Prefix), err)
		}
		entries = append(entries, Entry{List: list, Prefix: it.Prefix.Masked(), Remaining: it.For, Comment: backend.StampComment(it.Comment, s.now())})
	}
	if len(entries) == 0 {
		return &Result{}, nil
	}
	res := &Result{}
	entries, res.Covered = dedupe(entries)
	if err := s.checkSets(entries); err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	res.Added, res.Warnings, err = s.Kernel.Add(ctx, entries)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// dedupe drops duplicates and entries inside a wider entry of the same list
// and family; the last duplicate wins.
func dedupe(entries []Entry) ([]Entry, []string) {
	type key struct {
		list string
		p    netip.Prefix
	}
	last := map[key]int{}
	for i, e := range entries {
		last[key{e.List, e.Prefix}] = i
	}
	var nets []Entry
	for i, e := range entries {
		if last[key{e.List, e.Prefix}] == i && !e.Prefix.IsSingleIP() {
			nets = append(nets, e)
		}
	}
	out := make([]Entry, 0, len(last))
	var covered []string
	for i, e := range entries {
		if last[key{e.List, e.Prefix}] != i {
			continue
		}
		if w, ok := backend.Wider(nets, e); ok {
			covered = append(covered, fmt.Sprintf("%s (inside %s)", e.Addr(), w.Addr()))
			continue
		}
		out = append(out, e)
	}
	return out, covered
}

// RemoveEntries takes entries, as read, out of their lists in one
// transaction and returns how many.
func (s *Store) RemoveEntries(ctx context.Context, entries []Entry) (int, error) {
	for _, e := range entries {
		if err := CheckList(e.List); err != nil {
			return 0, err
		}
	}
	if len(entries) == 0 {
		return 0, nil
	}
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := s.Kernel.Delete(ctx, entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// Remove takes prefixes out of the given lists in one transaction. A prefix
// found in none of them, or only inside a wider network, is an error and
// nothing changes.
func (s *Store) Remove(ctx context.Context, lists []string, prefixes []netip.Prefix) (*Result, error) {
	for _, l := range lists {
		if err := CheckList(l); err != nil {
			return nil, err
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	have, err := s.Kernel.Read(ctx, lists...)
	if err != nil {
		return nil, err
	}
	byPrefix := map[netip.Prefix][]Entry{}
	var nets []Entry
	for _, e := range have {
		byPrefix[e.Prefix] = append(byPrefix[e.Prefix], e)
		if !e.Prefix.IsSingleIP() {
			nets = append(nets, e)
		}
	}
	var del []Entry
	var problems []string
	seen := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p = p.Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		if es := byPrefix[p]; len(es) > 0 {
			del = append(del, es...)
			continue
		}
		where := strings.Join(lists, ", ")
		found := false
		for _, n := range nets {
			if n.Prefix.Bits() < p.Bits() && n.Prefix.Contains(p.Addr()) {
				problems = append(problems, fmt.Sprintf("%s is not listed by itself but inside %s (list %s): remove %s, or ban/allow the rest of it again",
					FormatPrefix(p), n.Addr(), n.List, n.Addr()))
				found = true
				break
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("%s is in none of the lists %s", FormatPrefix(p), where))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s; nothing changed", strings.Join(problems, "; "))
	}
	if len(del) == 0 {
		return &Result{}, nil
	}
	if err := s.Kernel.Delete(ctx, del); err != nil {
		return nil, err
	}
	res := &Result{Removed: len(del)}
	for _, d := range del {
		if n, ok := backend.Wider(nets, d); ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s is still listed inside %s (list %s)", d.Addr(), n.Addr(), n.List))
		}
	}
	return res, nil
}
