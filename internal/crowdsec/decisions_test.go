package crowdsec

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
)

func dec(id int64, scope, value, dur string) Decision {
	return Decision{ID: id, Origin: "cscli", Scenario: "test", Scope: scope, Type: "ban", Value: value, Duration: dur}
}

func TestDecisionsApply(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	protected := netip.MustParsePrefix("192.0.2.0/24")
	d := NewDecisions(func(p netip.Prefix) string {
		if p.Overlaps(protected) {
			return "trusted network 192.0.2.0/24"
		}
		return ""
	})
	ch := d.Apply(&Stream{New: []Decision{
		dec(1, "Ip", "203.0.113.7", "1h"),
		dec(2, "Range", "198.51.100.77/24", "2h"), // host bits: masked
		dec(3, "ip", "2001:db8::66", "30m"),
		dec(4, "Ip", "192.0.2.20", "1h"), // protected
		{ID: 5, Scope: "Ip", Type: "captcha", Value: "203.0.113.9", Duration: "1h"},
		dec(6, "Country", "XX", "1h"),
		dec(7, "Ip", "203.0.113.8", "-5ms"), // already over
	}}, true, now, nil)
	if !ch.Full || len(ch.Set) != 3 {
		t.Fatalf("startup change: %+v", ch)
	}
	if ch.Set[0].Prefix.String() != "198.51.100.0/24" || !ch.Set[0].Until.Equal(now.Add(2*time.Hour)) {
		t.Errorf("range: %+v", ch.Set[0])
	}
	if !strings.Contains(ch.Set[1].Reason, "decision 1") {
		t.Errorf("reason %q does not name the decision", ch.Set[1].Reason)
	}
	if len(ch.Skipped) != 3 {
		t.Errorf("skipped %+v, want the protected, the captcha and the country", ch.Skipped)
	}

	// A later, longer decision for the same address refreshes its timeout;
	// a repeated or unknown deletion changes nothing.
	now = now.Add(time.Minute)
	ch = d.Apply(&Stream{New: []Decision{dec(10, "Ip", "203.0.113.7", "8h")}, Deleted: []Decision{dec(99, "Ip", "203.0.113.99", "-1s")}}, false, now, nil)
	if len(ch.Set) != 1 || !ch.Set[0].Until.Equal(now.Add(8*time.Hour)) || len(ch.Del) != 0 {
		t.Fatalf("extension: %+v", ch)
	}
	// Deleting the longer one leaves the picture unsure (LAPI 1.4 reports
	// deletions per value): the LAPI is asked, and the shorter one it says
	// is still active holds the address.
	asked := 0
	lookup := func(scope, value string) ([]Decision, error) {
		asked++
		if value != "203.0.113.7" {
			t.Errorf("lookup of %s %s", scope, value)
		}
		return []Decision{dec(1, "Ip", "203.0.113.7", "59m")}, nil
	}
	ch = d.Apply(&Stream{Deleted: []Decision{dec(10, "Ip", "203.0.113.7", "-1s")}}, false, now, lookup)
	if asked != 1 || len(ch.Set) != 1 || !ch.Set[0].Until.Equal(now.Add(59*time.Minute)) {
		t.Fatalf("fallback (asked %d): %+v", asked, ch)
	}
	// The last decision deleted lifts the ban; the same deletion again is a no-op.
	for i := 0; i < 2; i++ {
		ch = d.Apply(&Stream{Deleted: []Decision{dec(1, "Ip", "203.0.113.7", "-1s")}}, false, now, nil)
		if want := i == 0; (len(ch.Del) == 1) != want {
			t.Fatalf("deletion %d: %+v", i, ch)
		}
	}
	// Without a lookup, an unsure deletion lifts the address: a ban the
	// operator deleted must go.
	d.Apply(&Stream{New: []Decision{dec(20, "Ip", "203.0.113.50", "1h"), dec(21, "Ip", "203.0.113.50", "2h")}}, false, now, nil)
	ch = d.Apply(&Stream{Deleted: []Decision{dec(20, "Ip", "203.0.113.50", "-1s")}}, false, now, nil)
	if len(ch.Del) != 1 || ch.Del[0].String() != "203.0.113.50/32" {
		t.Fatalf("unsure deletion without lookup: %+v", ch)
	}
	// Re-added under a new id: enforced again.
	ch = d.Apply(&Stream{New: []Decision{dec(11, "Ip", "203.0.113.7", "1h")}}, false, now, nil)
	if len(ch.Set) != 1 {
		t.Fatalf("re-add: %+v", ch)
	}
	// Empty pull (LAPI 1.4 answers nulls).
	if ch = d.Apply(&Stream{}, false, now, nil); !ch.Empty() {
		t.Fatalf("empty pull: %+v", ch)
	}
	if d.Len() != 3 {
		t.Errorf("enforced %d prefixes, want 3", d.Len())
	}
}

func TestParseValue(t *testing.T) {
	for _, c := range []struct{ scope, value, want string }{
		{"Ip", "203.0.113.7", "203.0.113.7/32"},
		{"IP", "::ffff:203.0.113.7", "203.0.113.7/32"},
		{"Range", "2001:db8:66::/48", "2001:db8:66::/48"},
		{"range", "100.80.0.77/16", "100.80.0.0/16"},
		{"Ip", "100.128.0.0/24", "100.128.0.0/24"}, // as cscli import stores a range
		{"Ip", "not-an-address", ""},
		{"AS", "64496", ""},
	} {
		p, err := ParseValue(c.scope, c.value)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s %s: no error", c.scope, c.value)
			}
			continue
		}
		if err != nil || p.String() != c.want {
			t.Errorf("%s %s = %v, %v; want %s", c.scope, c.value, p, err, c.want)
		}
	}
}

func TestSinkOnFakeStore(t *testing.T) {
	store := backend.NewFakeStore(backend.FakeSets(List))
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sink := StoreSink{Store: store, Now: func() time.Time { return now }}
	d := NewDecisions(nil)
	ctx := context.Background()
	apply := func(s *Stream, startup bool) {
		t.Helper()
		if err := sink.Apply(ctx, d.Apply(s, startup, now, nil)); err != nil {
			t.Fatal(err)
		}
	}
	apply(&Stream{New: []Decision{dec(1, "Ip", "100.80.0.77", "8h"), dec(2, "Ip", "203.0.113.7", "1h")}}, true)
	// A range over a banned address (the kernel stores fold the address
	// into it).
	apply(&Stream{New: []Decision{dec(3, "Range", "100.80.0.0/24", "1h")}}, false)
	if s := store.String(); !strings.Contains(s, "100.80.0.0/24") {
		t.Fatalf("after the range:\n%s", s)
	}
	// Lifting the range puts the address, still banned, back.
	store.Delete(ctx, []backend.Entry{{List: List, Prefix: netip.MustParsePrefix("100.80.0.77/32")}}) // as folded
	apply(&Stream{Deleted: []Decision{dec(3, "Range", "100.80.0.0/24", "-1s")}}, false)
	if s := store.String(); strings.Contains(s, "100.80.0.0/24") || !strings.Contains(s, "100.80.0.77") {
		t.Fatalf("after lifting the range:\n%s", s)
	}
}
