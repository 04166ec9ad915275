package backend

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// FakeStore is a SetStore in memory, for the tests of code that writes the
// lists: String prints its state as text, one line per entry. It keeps the
// sets' shapes (an entry needs a set, a network needs a set for networks)
// but not their timeouts: an entry keeps the timeout it was written with.
type FakeStore struct {
	Sets []Set
	// Err, when set, is returned by every call.
	Err error

	mu      sync.Mutex
	entries map[string]map[netip.Prefix]Entry // by set name
}

// NewFakeStore returns an empty FakeStore over sets.
func NewFakeStore(sets []Set) *FakeStore { return &FakeStore{Sets: sets} }

// FakeSets are the sets of a ruleset that has every list in both
// families, each set taking networks.
func FakeSets(lists ...string) []Set {
	var out []Set
	for _, l := range lists {
		out = append(out,
			Set{Name: l + "4", List: l, IRName: l, Family: ir.IPv4, Networks: true},
			Set{Name: l + "6", List: l, IRName: l, Family: ir.IPv6, Networks: true})
	}
	return out
}

func (f *FakeStore) set(e Entry) (Set, error) {
	if f.Err != nil {
		return Set{}, f.Err
	}
	return SetFor(f.Sets, e.List, e.Prefix)
}

// Read implements SetStore.
func (f *FakeStore) Read(_ context.Context, lists ...string) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []Entry
	for _, l := range lists {
		sets := SetsOf(f.Sets, l)
		if len(sets) == 0 {
			return nil, fmt.Errorf("fake: no set for the %s list: %w", l, ErrNoSet)
		}
		for _, s := range sets {
			for _, e := range f.entries[s.Name] {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// Add implements SetStore.
func (f *FakeStore) Add(_ context.Context, entries []Entry) (int, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range entries {
		if _, err := f.set(e); err != nil {
			return 0, nil, err
		}
	}
	if f.entries == nil {
		f.entries = map[string]map[netip.Prefix]Entry{}
	}
	for _, e := range entries {
		s, _ := f.set(e)
		if f.entries[s.Name] == nil {
			f.entries[s.Name] = map[netip.Prefix]Entry{}
		}
		e.Prefix = e.Prefix.Masked()
		f.entries[s.Name][e.Prefix] = e
	}
	return len(entries), nil, nil
}

// Delete implements SetStore.
func (f *FakeStore) Delete(_ context.Context, entries []Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range entries {
		if _, err := f.set(e); err != nil {
			return err
		}
	}
	for _, e := range entries {
		s, _ := f.set(e)
		delete(f.entries[s.Name], e.Prefix.Masked())
	}
	return nil
}

// Replace implements SetStore.
func (f *FakeStore) Replace(ctx context.Context, list string, entries []Entry) error {
	f.mu.Lock()
	for _, s := range SetsOf(f.Sets, list) {
		delete(f.entries, s.Name)
	}
	f.mu.Unlock()
	_, _, err := f.Add(ctx, entries)
	return err
}

// Has reports whether a is listed by itself in list.
func (f *FakeStore) Has(list string, a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	a = a.Unmap()
	for _, s := range SetsOf(f.Sets, list) {
		if _, ok := f.entries[s.Name][netip.PrefixFrom(a, a.BitLen())]; ok {
			return true
		}
	}
	return false
}

// String prints the entries, one "list address timeout [comment]" line
// each, sorted; the timeout is "default" for none.
func (f *FakeStore) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for _, m := range f.entries {
		for _, e := range m {
			t := "default"
			if e.Remaining > 0 {
				t = e.Remaining.Truncate(time.Second).String()
			}
			line := fmt.Sprintf("%s %s %s", e.List, e.Addr(), t)
			if e.Comment != "" {
				line += fmt.Sprintf(" %q", e.Comment)
			}
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
