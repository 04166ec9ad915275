package lists_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sw "github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/lists"
)

// fakeStore is a Store over the fake set store: the lists' own logic
// (dedupe, removal checks, save and restore) without a kernel.
func fakeStore(t *testing.T) (*lists.Store, *sw.FakeStore) {
	sets := sw.FakeSets(lists.Names...)
	f := sw.NewFakeStore(sets)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &lists.Store{Sets: sets, Kernel: f, Now: func() time.Time { return now }}, f
}

func TestListsOverFake(t *testing.T) {
	s, f := fakeStore(t)
	ctx := context.Background()
	res, err := s.Add(ctx, "banned", items(t, time.Hour, "fraud", "203.0.113.5", "198.51.100.0/24", "198.51.100.7", "203.0.113.5"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 2 || len(res.Covered) != 1 || res.Covered[0] != "198.51.100.7 (inside 198.51.100.0/24)" {
		t.Errorf("add: %+v", res)
	}
	// The time of the ban goes at the end of the comment, as the kernel keeps it.
	want := "banned 198.51.100.0/24 1h0m0s \"fraud @1767225600\"\nbanned 203.0.113.5 1h0m0s \"fraud @1767225600\""
	if got := f.String(); got != want {
		t.Errorf("fake after add:\n%s\nwant:\n%s", got, want)
	}
	// Removal: an address only inside a network, or listed nowhere, is
	// an error and nothing changes.
	if _, err := s.Unban(ctx, prefixes(t, "203.0.113.5", "198.51.100.9")); err == nil || !strings.Contains(err.Error(), "198.51.100.9 is not listed by itself but inside 198.51.100.0/24") {
		t.Errorf("unban of an address inside a network: %v", err)
	}
	if _, err := s.Unban(ctx, prefixes(t, "192.0.2.1")); err == nil || !strings.Contains(err.Error(), "in none of the lists") {
		t.Errorf("unban of an address listed nowhere: %v", err)
	}
	if got := f.String(); got != want {
		t.Errorf("a refused unban changed the lists:\n%s", got)
	}
	if r, err := s.Unban(ctx, prefixes(t, "203.0.113.5")); err != nil || r.Removed != 1 {
		t.Errorf("unban: %+v %v", r, err)
	}
	// Save, empty, restore: the entry comes back with its time left.
	file := filepath.Join(t.TempDir(), "lists.json")
	if _, err := s.Save(ctx, file); err != nil {
		t.Fatal(err)
	}
	f.Replace(ctx, "banned", nil)
	if f.String() != "" {
		t.Fatalf("replace with nothing left:\n%s", f.String())
	}
	later := time.Date(2026, 1, 1, 0, 20, 0, 0, time.UTC)
	s.Now = func() time.Time { return later }
	r, err := s.Restore(ctx, file)
	if err != nil || r.Restored != 1 {
		t.Fatalf("restore: %+v %v", r, err)
	}
	if got := f.String(); got != "banned 198.51.100.0/24 40m0s \"fraud @1767225600\"" {
		t.Errorf("after restore 20 minutes later:\n%s", got)
	}
}
