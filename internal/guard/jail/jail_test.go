package jail

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func mustNew(t *testing.T, c Config) *Jail {
	t.Helper()
	j, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestDefaultsBanOnFifthFailureInWindow(t *testing.T) {
	j := mustNew(t, Config{})
	a := netip.MustParseAddr("192.0.2.1")
	for i := 1; i <= 4; i++ {
		d := j.Fail(t0.Add(time.Duration(i)*time.Minute), a)
		if d.Action != Counted || d.Failures != i {
			t.Fatalf("failure %d: %+v", i, d)
		}
	}
	d := j.Fail(t0.Add(5*time.Minute), a)
	if d.Action != Ban || d.Duration != time.Hour || !d.Until.Equal(t0.Add(65*time.Minute)) || d.Bans != 1 {
		t.Fatalf("fifth failure: %+v", d)
	}
	if until, ok := j.BannedUntil(a, t0.Add(30*time.Minute)); !ok || !until.Equal(d.Until) {
		t.Errorf("BannedUntil during the ban: %v %v", until, ok)
	}
	if d := j.Fail(t0.Add(6*time.Minute), a); d.Action != AlreadyBanned {
		t.Errorf("failure while banned: %+v", d)
	}
	if _, ok := j.BannedUntil(a, t0.Add(65*time.Minute)); ok {
		t.Errorf("still banned when the ban ends")
	}
}

func TestWindowSlides(t *testing.T) {
	j := mustNew(t, Config{FindTime: 10 * time.Minute, MaxRetry: 3})
	a := netip.MustParseAddr("2001:db8::1")
	// One failure every 6 minutes: never three within 10 minutes.
	for i := range 20 {
		if d := j.Fail(t0.Add(time.Duration(i)*6*time.Minute), a); d.Action != Counted || d.Failures > 2 {
			t.Fatalf("failure %d: %+v", i, d)
		}
	}
	// Out of order: a failure logged late, still inside the window, counts.
	b := netip.MustParseAddr("192.0.2.2")
	j.Fail(t0.Add(9*time.Minute), b)
	j.Fail(t0.Add(1*time.Minute), b)
	if d := j.Fail(t0.Add(5*time.Minute), b); d.Action != Ban {
		t.Errorf("three failures within the window, out of order: %+v", d)
	}
}

func TestRecidiveEscalation(t *testing.T) {
	j := mustNew(t, Config{MaxRetry: 1, BanTime: time.Hour, MaxBanTime: 5 * time.Hour})
	a := netip.MustParseAddr("192.0.2.3")
	now := t0
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 5 * time.Hour, 5 * time.Hour}
	for i, w := range want {
		d := j.Fail(now, a)
		if d.Action != Ban || d.Duration != w || d.Bans != i+1 {
			t.Fatalf("ban %d: %+v, want %v", i+1, d, w)
		}
		now = d.Until
	}
	// Eight days later the earlier bans are forgotten.
	if d := j.Fail(now.Add(8*24*time.Hour), a); d.Duration != time.Hour || d.Bans != 1 {
		t.Errorf("after the recidive window: %+v", d)
	}

	flat := mustNew(t, Config{MaxRetry: 1, BanFactor: 1})
	d1 := flat.Fail(t0, a)
	d2 := flat.Fail(d1.Until, a)
	if d2.Duration != DefaultBanTime {
		t.Errorf("BanFactor 1 escalated: %+v", d2)
	}
}

func TestNeverBanned(t *testing.T) {
	j := mustNew(t, Config{
		MaxRetry: 1,
		NeverBan: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("198.51.100.7/32")},
		Self:     []netip.Addr{netip.MustParseAddr("203.0.113.5")},
	})
	for addr, why := range map[string]string{
		"127.0.0.1":          "loopback",
		"::1":                "loopback",
		"::ffff:127.0.0.2":   "loopback",
		"203.0.113.5":        "own address",
		"::ffff:203.0.113.5": "own address",
		"10.9.8.7":           "never-ban 10.0.0.0/8",
		"2001:db8:1::42":     "never-ban 2001:db8:1::/48",
		"198.51.100.7":       "never-ban 198.51.100.7/32",
		"0.0.0.0":            "unspecified",
	} {
		for range 3 {
			d := j.Fail(t0, netip.MustParseAddr(addr))
			if d.Action != Ignored || !strings.Contains(d.Reason, why) {
				t.Errorf("%s: %+v, want ignored (%s)", addr, d, why)
			}
		}
	}
	if j.Tracked() != 0 {
		t.Errorf("exempt addresses are tracked: %d", j.Tracked())
	}
	if d := j.Fail(t0, netip.MustParseAddr("198.51.100.8")); d.Action != Ban {
		t.Errorf("neighbour of a never-ban address: %+v", d)
	}
}

func TestMemoryBounded(t *testing.T) {
	j := mustNew(t, Config{MaxTracked: 1000, MaxRetry: 3})
	banned := netip.MustParseAddr("192.0.2.200")
	for range 3 {
		j.Fail(t0, banned)
	}
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
		j.Fail(t0.Add(time.Duration(i)*time.Millisecond), a)
		if j.Tracked() > 1000 {
			t.Fatalf("tracking %d addresses", j.Tracked())
		}
	}
	if _, ok := j.BannedUntil(banned, t0.Add(time.Minute)); !ok {
		t.Errorf("a running ban was forgotten under a flood")
	}
	if n := j.Prune(t0.Add(30 * 24 * time.Hour)); n == 0 || j.Tracked() != 0 {
		t.Errorf("prune after a month: removed %d, %d left", n, j.Tracked())
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{FindTime: -1},
		{MaxRetry: -1},
		{BanTime: -time.Second},
		{BanTime: 2 * time.Hour, MaxBanTime: time.Hour},
		{NeverBan: []netip.Prefix{{}}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestSuccessResetsCountNotBan(t *testing.T) {
	j := mustNew(t, Config{})
	a := netip.MustParseAddr("192.0.2.1")
	for i := 1; i <= 4; i++ {
		j.Fail(t0.Add(time.Duration(i)*time.Second), a)
	}
	if !j.Succeeded(t0.Add(5*time.Second), a) {
		t.Fatal("success after 4 failures reset nothing")
	}
	for i := 1; i <= 4; i++ {
		if d := j.Fail(t0.Add(time.Duration(5+i)*time.Second), a); d.Action != Counted || d.Failures != i {
			t.Fatalf("failure %d after the success: %+v", i, d)
		}
	}
	d := j.Fail(t0.Add(10*time.Second), a)
	if d.Action != Ban {
		t.Fatalf("fifth failure after the success: %+v", d)
	}
	if j.Succeeded(t0.Add(11*time.Second), a) {
		t.Error("a success during the ban reset something")
	}
	if _, ok := j.BannedUntil(a, t0.Add(12*time.Second)); !ok {
		t.Error("a success lifted the ban")
	}
	if j.Succeeded(t0, netip.MustParseAddr("192.0.2.2")) {
		t.Error("a source never seen was reset")
	}
}
