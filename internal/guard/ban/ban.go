// Package ban is how guard puts addresses into sipwall's kernel lists and
// takes them out again: a Banner writes one address at a time through the
// applied backend's set store (package backend), whatever the backend.
//
// Lists are named as in package compile (compile.SetBanned, SetScanners,
// SetAdmitted, SetAllowed…); the set store finds their sets. Fake keeps the
// lists in memory and prints them as text, for the tests of code that bans.
package ban

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
)

// Banner adds addresses to and removes them from the kernel lists.
type Banner interface {
	// Add puts addr into list for timeout (0: the list's default, which is
	// forever for banned and scanners). Adding an address already there is
	// not an error.
	Add(ctx context.Context, list string, addr netip.Addr, timeout time.Duration) error
	// Remove takes addr out of list; an absent address is not an error.
	Remove(ctx context.Context, list string, addr netip.Addr) error
}

// Explainer is a Banner that can say why it lists an address: the
// entry's comment, which sipwall lists shows and sipwall stats counts the
// scanners list by (compile.SignatureComment).
type Explainer interface {
	AddWhy(ctx context.Context, list string, addr netip.Addr, timeout time.Duration, why string) error
}

// Store is the Banner that writes through a set store: each call is one
// transaction.
type Store struct {
	Sets backend.SetStore
}

func entry(list string, a netip.Addr, timeout time.Duration) backend.Entry {
	a = a.Unmap()
	return backend.Entry{List: list, Prefix: netip.PrefixFrom(a, a.BitLen()), Remaining: timeout}
}

// Add implements Banner. An address inside a network listed already is
// listed already.
func (s Store) Add(ctx context.Context, list string, a netip.Addr, timeout time.Duration) error {
	return s.AddWhy(ctx, list, a, timeout, "")
}

// AddWhy implements Explainer: Add, with why as the entry's comment.
func (s Store) AddWhy(ctx context.Context, list string, a netip.Addr, timeout time.Duration, why string) error {
	return s.add(ctx, list, a, timeout, why, true)
}

// add puts a in list; stamp writes the time of a ban with its comment.
func (s Store) add(ctx context.Context, list string, a netip.Addr, timeout time.Duration, why string, stamp bool) error {
	e := entry(list, a, timeout)
	e.Comment = why
	switch {
	case !stamp:
	case list == compile.SetBanned || list == compile.SetScanners:
		// The time of a ban goes with its comment (sipwall why shows it).
		if why == "" && list == compile.SetBanned {
			why = "guard jail"
		}
		e.Comment = backend.StampComment(why, time.Now())
	}
	if _, _, err := s.Sets.Add(ctx, []backend.Entry{e}); err != nil {
		return fmt.Errorf("ban: add %s to %s: %w", a.Unmap(), list, err)
	}
	return nil
}

// Remove implements Banner.
func (s Store) Remove(ctx context.Context, list string, a netip.Addr) error {
	if err := s.Sets.Delete(ctx, []backend.Entry{entry(list, a, 0)}); err != nil {
		return fmt.Errorf("ban: remove %s from %s: %w", a.Unmap(), list, err)
	}
	return nil
}

// Fake is a Banner over a backend.FakeStore that has every list.
type Fake struct {
	// Err, when set, is returned by every call.
	Err error

	once  sync.Once
	store *backend.FakeStore
}

func (f *Fake) kernel() *backend.FakeStore {
	f.once.Do(func() {
		f.store = backend.NewFakeStore(backend.FakeSets(compile.SetBanned, compile.SetScanners,
			compile.SetTrapped, compile.SetAdmitted, compile.SetAllowed))
	})
	f.store.Err = f.Err
	return f.store
}

// Add implements Banner.
func (f *Fake) Add(ctx context.Context, list string, a netip.Addr, timeout time.Duration) error {
	return Store{f.kernel()}.add(ctx, list, a, timeout, "", false)
}

// AddWhy implements Explainer.
func (f *Fake) AddWhy(ctx context.Context, list string, a netip.Addr, timeout time.Duration, why string) error {
	return Store{f.kernel()}.add(ctx, list, a, timeout, why, false)
}

// Remove implements Banner.
func (f *Fake) Remove(ctx context.Context, list string, a netip.Addr) error {
	return Store{f.kernel()}.Remove(ctx, list, a)
}

// Has reports whether a is in list.
func (f *Fake) Has(list string, a netip.Addr) bool { return f.kernel().Has(list, a) }

// String prints the lists, one "list address timeout" line per entry,
// sorted.
func (f *Fake) String() string { return f.kernel().String() }
