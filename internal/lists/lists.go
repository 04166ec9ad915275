// Package lists manages sipwall's dynamic lists in the kernel: the banned,
// allowed, admitted, scanners and trapped sets (ipset sets for the iptables
// backend, sets of table inet sipwall for nftables). It bans and unbans
// addresses and networks in one transaction, deletes a banned source's
// conntrack flows, saves the lists with their remaining timeouts to a
// checksummed file and restores them, and reads the ruleset's counters.
// Everything it does to the system goes through an apply.Runner, except the
// changes to nftables lists: those go over netlink, in the namespace where
// the Runner (an apply.Exec) runs its tools.
package lists

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render/iptables"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// Names are the dynamic lists, in the order they are shown.
var Names = []string{compile.SetBanned, compile.SetScanners, compile.SetTrapped, compile.SetAdmitted, compile.SetAllowed}

// about says in words what each list is.
var about = map[string]string{
	compile.SetBanned:   "banned by hand or by guard: every port",
	compile.SetScanners: "SIP scanners (user-agent signature): every port",
	compile.SetTrapped:  "port scanners caught by a trap port: every port",
	compile.SetAdmitted: "sources admitted to SIP by their knock",
	compile.SetAllowed:  "sources admitted to SIP by hand",
}

// About says what list name is for ("" for an unknown list).
func About(name string) string { return about[name] }

// networks reports whether a list takes networks (CIDR) as well as single
// addresses: the nft sets of the other lists are filled by the kernel with
// single addresses and have no interval flag.
func networks(list string) bool { return list == compile.SetBanned || list == compile.SetAllowed }

// netTwin is, with nftables, the set of list that holds its networks: the
// set named after the list holds single addresses in a hash, whose changes
// cost the same whatever its size, and the twin holds networks in an
// interval set, whose every change walks the whole tree.
var netTwin = map[string]string{compile.SetBanned: compile.SetBannedNet, compile.SetAllowed: compile.SetAllowedNet}

// setList is the set (named as in package compile, without the family)
// that holds p for list in backend.
func setList(backend, list string, p netip.Prefix) string {
	if backend == "nftables" && !p.IsSingleIP() {
		if t, ok := netTwin[list]; ok {
			return t
		}
	}
	return list
}

// entrySet is the name of the kernel set that holds e in backend.
func entrySet(backend string, e Entry) string {
	return kernelName(backend, setList(backend, e.List, e.Prefix), family(e.Prefix))
}

// CheckList returns an error unless name is one of the dynamic lists.
func CheckList(name string) error {
	for _, n := range Names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("%q is not a list (lists: %s)", name, strings.Join(Names, ", "))
}

// Entry is one address or network in a list.
type Entry struct {
	List   string
	Prefix netip.Prefix
	// Remaining is the time left before the kernel removes the entry;
	// 0 means never.
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

// Item is one address or network to put in a list.
type Item struct {
	Prefix netip.Prefix
	// For is how long it stays; 0 means until removed.
	For     time.Duration
	Comment string
}

// ParseItem parses an address or a network for list; it refuses networks
// with host bits set, /0 and, in lists that hold single addresses only,
// networks.
func ParseItem(list, s string) (netip.Prefix, error) {
	p, err := policy.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("%q is every address: refusing to put it in a list", s)
	}
	if !p.IsSingleIP() && !networks(list) {
		return netip.Prefix{}, fmt.Errorf("%q is a network; the %s list holds single addresses only", s, list)
	}
	return p, nil
}

// MaxFor returns the longest --for the backend's sets accept.
func MaxFor(backend string) time.Duration {
	if backend == "iptables" {
		// ipset keeps timeouts in milliseconds in a 32-bit number.
		return 4294967 * time.Second
	}
	return 3650 * 24 * time.Hour
}

// CheckFor validates a --for duration for backend.
func CheckFor(backend string, d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < time.Second:
		return fmt.Errorf("%s is shorter than the kernel's 1 s resolution", d)
	case d%time.Second != 0:
		return fmt.Errorf("%s is not a whole number of seconds", d)
	case d > MaxFor(backend):
		return fmt.Errorf("%s is longer than the %s backend allows (%s, about %d days); leave --for out to ban until unbanned",
			d, backend, MaxFor(backend), int(MaxFor(backend)/(24*time.Hour)))
	}
	return nil
}

// ErrNothingApplied is returned when no ruleset has been applied.
var ErrNothingApplied = errors.New("nothing applied: run sipwall apply first")

// Store reads and changes the lists of the applied ruleset.
type Store struct {
	R       apply.Runner
	Backend string // "iptables" or "nftables"
	// StateDir holds the lock that serialises changes with other sipwall
	// processes ("" takes no lock).
	StateDir string
	// LockWait is how long to wait for another sipwall (default 10 s).
	LockWait time.Duration
	// Sets are the kernel sets the applied ruleset declares (nil: not
	// checked); an entry for a set it lacks, such as an IPv6 address
	// under a policy without IPv6, is refused before anything changes.
	Sets map[string]bool
	// Rules are the applied ruleset's rules as the kernel lists them, with
	// their kinds: stats maps the kernel's counters to them.
	Rules []ir.RuleRef
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Open returns the Store of the ruleset applied according to stateDir.
func Open(stateDir string, r apply.Runner) (*Store, error) {
	st, err := apply.LoadState(stateDir)
	if err != nil {
		return nil, err
	}
	if st.Current == nil {
		return nil, ErrNothingApplied
	}
	return &Store{R: r, Backend: st.Current.Backend, StateDir: stateDir, Sets: DeclaredSets(st.Current), Rules: st.Current.Rules}, nil
}

var (
	ipsetCreate = regexp.MustCompile(`(?m)^create (\S+) `)
	nftSetDecl  = regexp.MustCompile(`(?m)^\s*set (\S+) \{`)
)

// DeclaredSets returns the kernel sets a generation's files declare.
func DeclaredSets(g *apply.Generation) map[string]bool {
	if g == nil {
		return nil
	}
	m := map[string]bool{}
	for _, re := range []*regexp.Regexp{ipsetCreate, nftSetDecl} {
		for _, f := range g.Files {
			for _, x := range re.FindAllStringSubmatch(f, -1) {
				m[x[1]] = true
			}
		}
	}
	return m
}

// checkSets refuses entries whose set the applied ruleset lacks.
func (s *Store) checkSets(entries []Entry) error {
	if s.Sets == nil {
		return nil
	}
	for _, e := range entries {
		if n := entrySet(s.Backend, e); !s.Sets[n] {
			why := ""
			if family(e.Prefix) == ir.IPv6 {
				why = " (is ipv6 off in the policy?)"
			}
			return fmt.Errorf("%s: the applied ruleset has no set %s%s; nothing changed", e.Addr(), n, why)
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

func (s *Store) be() (backend, error) {
	switch s.Backend {
	case "iptables":
		return ipsetBackend{s.R}, nil
	case "nftables":
		return nftBackend{s.R}, nil
	}
	return nil, fmt.Errorf("lists: unknown backend %q", s.Backend)
}

// backend is one kind of kernel set.
type backend interface {
	// read returns the entries of the lists (both families).
	read(ctx context.Context, lists []string) ([]Entry, error)
	// add puts entries in; an entry already present takes the new
	// timeout and comment. It returns how many went in and warnings.
	add(ctx context.Context, entries []Entry) (int, []string, error)
	// del removes entries that are present.
	del(ctx context.Context, entries []Entry) error
}

func family(p netip.Prefix) ir.Family {
	if p.Addr().Is4() {
		return ir.IPv4
	}
	return ir.IPv6
}

// kernelName is the name of list's set for p's family in backend.
func kernelName(backend, list string, f ir.Family) string {
	if backend == "iptables" {
		return iptables.SetName(list, f)
	}
	return nft.SetName(list, f)
}

// List returns the entries of the given lists (every list when none),
// sorted by list, then address.
func (s *Store) List(ctx context.Context, lists ...string) ([]Entry, error) {
	if len(lists) == 0 {
		lists = Names
	}
	for _, l := range lists {
		if err := CheckList(l); err != nil {
			return nil, err
		}
	}
	be, err := s.be()
	if err != nil {
		return nil, err
	}
	es, err := be.read(ctx, lists)
	if err != nil {
		return nil, err
	}
	sortEntries(es)
	return es, nil
}

func sortEntries(es []Entry) {
	rank := map[string]int{}
	for i, n := range Names {
		rank[n] = i
	}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].List != es[j].List {
			return rank[es[i].List] < rank[es[j].List]
		}
		if c := es[i].Prefix.Addr().Compare(es[j].Prefix.Addr()); c != 0 {
			return c < 0
		}
		return es[i].Prefix.Bits() < es[j].Prefix.Bits()
	})
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
}

// Ban puts items in the banned list in one transaction and deletes the
// conntrack flows of the banned sources, so that an established SIP flow
// stops too.
func (s *Store) Ban(ctx context.Context, items []Item) (*Result, error) {
	res, err := s.Add(ctx, compile.SetBanned, items)
	if err != nil {
		return nil, err
	}
	prefixes := make([]netip.Prefix, len(items))
	for i, it := range items {
		prefixes[i] = it.Prefix
	}
	n, err := DeleteFlows(ctx, s.R, prefixes)
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
// from the scanners and trapped lists too.
func (s *Store) Unban(ctx context.Context, prefixes []netip.Prefix) (*Result, error) {
	return s.Remove(ctx, []string{compile.SetBanned, compile.SetScanners, compile.SetTrapped}, prefixes)
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
		if !it.Prefix.IsSingleIP() && !networks(list) {
			return nil, fmt.Errorf("%s is a network; the %s list holds single addresses only", it.Prefix, list)
		}
		if err := CheckFor(s.Backend, it.For); err != nil {
			return nil, fmt.Errorf("%s: --for: %w", FormatPrefix(it.Prefix), err)
		}
		entries = append(entries, Entry{List: list, Prefix: it.Prefix.Masked(), Remaining: it.For, Comment: it.Comment})
	}
	if len(entries) == 0 {
		return &Result{}, nil
	}
	res := &Result{}
	entries, res.Covered = dedupe(entries)
	if err := s.checkSets(entries); err != nil {
		return nil, err
	}
	be, err := s.be()
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	res.Added, res.Warnings, err = be.add(ctx, entries)
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
		if w, ok := widerIn(nets, e); ok {
			covered = append(covered, fmt.Sprintf("%s (inside %s)", e.Addr(), w.Addr()))
			continue
		}
		out = append(out, e)
	}
	return out, covered
}

// widerIn finds an entry of the same list in nets strictly wider than e
// that contains it.
func widerIn(nets []Entry, e Entry) (Entry, bool) {
	for _, n := range nets {
		if n.List == e.List && n.Prefix.Bits() < e.Prefix.Bits() && n.Prefix.Contains(e.Prefix.Addr()) {
			return n, true
		}
	}
	return Entry{}, false
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
	be, err := s.be()
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	have, err := be.read(ctx, lists)
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
	if err := be.del(ctx, del); err != nil {
		return nil, err
	}
	res := &Result{Removed: len(del)}
	for _, d := range del {
		if n, ok := widerIn(nets, d); ok {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s is still listed inside %s (list %s)", d.Addr(), n.Addr(), n.List))
		}
	}
	return res, nil
}
