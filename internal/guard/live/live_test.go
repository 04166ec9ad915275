package live

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/events"
	"github.com/sipwall/sipwall/internal/guard/inspect"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

func failLine(addr string, i int) string {
	return fmt.Sprintf("[2024-03-01 10:00:%02d] NOTICE[1234] chan_sip.c: Registration from '<sip:%d@pbx>' failed for '%s:5060' - Wrong password\n", i, 100+i, addr)
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fakeLists struct{ saved chan string }

func (f *fakeLists) Save(_ context.Context, path string) error {
	select {
	case f.saved <- path:
	default:
	}
	return nil
}
func (f *fakeLists) Sizes(context.Context) (map[string]int, error) {
	return map[string]int{"banned": 3, "admitted": 7}, nil
}

func TestLogFailuresBan(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	appendLines(t, log, failLine("203.0.113.5", 0)) // before guard starts: not counted
	fb := &ban.Fake{}
	lists := &fakeLists{saved: make(chan string, 1)}
	m := NewMetrics()
	resolved := map[string][]netip.Addr{"home.example.net": {netip.MustParseAddr("198.51.100.99")}}
	g, err := New(Config{
		Logs: []string{log}, StateDir: filepath.Join(dir, "state"),
		Jail: jail.Config{MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour,
			NeverBan: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		Banner: fb, Metrics: m,
		Hosts: []string{"home.example.net"},
		Resolve: func(_ context.Context, name string) ([]netip.Addr, error) {
			return resolved[name], nil
		},
		Lists: lists, SavePath: filepath.Join(dir, "lists.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()

	// The trusted host is allowed before anything else happens.
	waitFor(t, "allowed host", func() bool { return fb.Has(compile.SetAllowed, netip.MustParseAddr("198.51.100.99")) })
	time.Sleep(30 * time.Millisecond) // the follower has opened the file at its end

	var lines []string
	for i := 0; i < 4; i++ {
		lines = append(lines, failLine("203.0.113.5", i+1), failLine("192.0.2.50", i+1), failLine("198.51.100.99", i+1))
	}
	appendLines(t, log, lines...)
	time.Sleep(50 * time.Millisecond)
	if fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.5")) {
		t.Fatal("banned after 4 failures (the line before start must not count)")
	}
	appendLines(t, log, failLine("203.0.113.5", 5), failLine("192.0.2.50", 5), failLine("198.51.100.99", 5))
	waitFor(t, "ban", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.5")) })
	time.Sleep(30 * time.Millisecond)

	// An address the inspector admitted is banned the same way, and the
	// metric says it was admitted.
	g.verdict(ctx, inspect.Result{Verdict: inspect.Admit, Reason: inspect.ReasonHostname, Src: netip.MustParseAddr("203.0.113.6")})
	for i := 0; i < 5; i++ {
		appendLines(t, log, failLine("203.0.113.6", i))
	}
	waitFor(t, "ban of the admitted source", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.6")) })
	// A scanner verdict goes to the scanners list, not for never-banned.
	g.verdict(ctx, inspect.Result{Verdict: inspect.Ban, Reason: inspect.ReasonSignature, Src: netip.MustParseAddr("203.0.113.7"), Match: "friendly-scanner"})
	g.verdict(ctx, inspect.Result{Verdict: inspect.Ban, Reason: inspect.ReasonSignature, Src: netip.MustParseAddr("192.0.2.7"), Match: "friendly-scanner"})
	g.verdict(ctx, inspect.Result{Verdict: inspect.Ban, Reason: inspect.ReasonSignature, Src: netip.MustParseAddr("127.0.0.1"), Match: "friendly-scanner"})

	want := strings.Join([]string{
		"admitted 203.0.113.6 default",
		"allowed 198.51.100.99 15m0s",
		"banned 203.0.113.5 1h0m0s",
		"banned 203.0.113.6 1h0m0s",
		`scanners 203.0.113.7 default "scanner signature friendly-scanner"`,
	}, "\n")
	if got := fb.String(); got != want {
		t.Errorf("lists:\n%s\nwant:\n%s", got, want)
	}

	// Metrics and health over HTTP.
	srv := httptest.NewServer(Handler(m, g.h))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	for _, s := range []string{
		`sipwall_guard_bans_total{reason="auth-failures"} 1`,
		`sipwall_guard_bans_total{reason="admitted-auth-failures"} 1`,
		`sipwall_guard_bans_total{reason="scanner"} 1`,
		`sipwall_guard_admits_total 1`,
		`sipwall_guard_events_total{input="log",type="RegistrationFailed"} 20`,
		`sipwall_guard_set_entries{list="admitted"} 7`,
		`sipwall_guard_ban_seconds_count 2`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("metrics lack %q", s)
		}
	}
	if h := get(t, srv.URL+"/healthz"); h != "ok\n" {
		t.Errorf("healthz %q", h)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case p := <-lists.saved:
		if !strings.HasSuffix(p, "lists.json") {
			t.Errorf("saved to %s", p)
		}
	default:
		t.Error("lists not saved on the way out")
	}
	// The follower's position was saved.
	if ents, _ := os.ReadDir(filepath.Join(dir, "state")); len(ents) != 1 {
		t.Errorf("state files %v", ents)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := httptestGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func httptestGet(url string) (string, error) {
	res, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func TestHealthReportsProblems(t *testing.T) {
	var h Health
	h.Set("ami 127.0.0.1:5038", "disconnected, reconnecting")
	h.Set("log /var/log/asterisk/security", "")
	srv := httptest.NewServer(Handler(NewMetrics(), &h))
	defer srv.Close()
	res, err := httpClient.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(b), "ami 127.0.0.1:5038: disconnected") {
		t.Errorf("status %d body %q", res.StatusCode, b)
	}
}

func TestNothingToWatch(t *testing.T) {
	if _, err := New(Config{Banner: &ban.Fake{}}); err == nil || !strings.Contains(err.Error(), "nothing to watch") {
		t.Errorf("err %v", err)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// TestMissingLogStaysUnhealthyUntilItWrites: a log file that does not
// exist yet keeps the problem it was given at start in /healthz; once
// Asterisk creates it, it is read from its first line, the problem clears
// and its failures ban.
func TestMissingLogStaysUnhealthyUntilItWrites(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	h := &Health{}
	h.Set("log "+log, "does not exist (followed once it appears)")
	fb := &ban.Fake{}
	g, err := New(Config{
		Logs: []string{log}, StateDir: filepath.Join(dir, "state"), Poll: time.Millisecond,
		Jail:   jail.Config{MaxRetry: 2, FindTime: time.Minute, BanTime: time.Hour},
		Banner: fb, Health: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if bad := h.Check(); len(bad) != 1 || !strings.Contains(bad[0], "does not exist") {
		t.Errorf("health while the file is missing: %v", bad)
	}
	appendLines(t, log, failLine("203.0.113.7", 0), failLine("203.0.113.7", 1))
	waitFor(t, "the ban", func() bool { return strings.Contains(fb.String(), "203.0.113.7") })
	if bad := h.Check(); len(bad) != 0 {
		t.Errorf("health after the file's first lines: %v", bad)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With IPv6 sources counted per /64, every address of a banned /64 is
// banned at its first failure, for what is left of the network's ban.
func TestIPv6PrefixBansEveryAddressOfTheNetwork(t *testing.T) {
	fb := &ban.Fake{}
	g, err := New(Config{Logs: []string{filepath.Join(t.TempDir(), "log")}, Banner: fb,
		Jail: jail.Config{MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour, IPv6Prefix: 64}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	fail := func(a string, at time.Time) { g.failure(ctx, events.Event{Addr: netip.MustParseAddr(a)}, "log", at) }
	fail("2001:db8:1:2::1", now)
	fail("2001:db8:1:2::2", now)
	fail("2001:db8:1:2::3", now) // the third failure of the /64
	if !fb.Has(compile.SetBanned, netip.MustParseAddr("2001:db8:1:2::3")) {
		t.Fatalf("the address that completed the /64's failures is not banned:\n%s", fb)
	}
	fail("2001:db8:1:2:ffff::9", now.Add(10*time.Minute))
	if !fb.Has(compile.SetBanned, netip.MustParseAddr("2001:db8:1:2:ffff::9")) {
		t.Errorf("another address of the banned /64 is not banned:\n%s", fb)
	}
	if !strings.Contains(fb.String(), "banned 2001:db8:1:2:ffff::9 50m0s") {
		t.Errorf("not banned for the rest of the network's ban:\n%s", fb)
	}
	fail("2001:db8:1:3::1", now)
	if fb.Has(compile.SetBanned, netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Errorf("a neighbouring /64 banned on its first failure")
	}
}

// TestAllowedNeverBanned: a source in the allowed list (sipwall allow) is not
// banned for authentication failures; another source is.
func TestAllowedNeverBanned(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	appendLines(t, log)
	fb := &ban.Fake{}
	allowed := netip.MustParsePrefix("198.51.100.0/24")
	asked := 0
	g, err := New(Config{
		Logs: []string{log}, StateDir: filepath.Join(dir, "state"),
		Jail:   jail.Config{MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour},
		Banner: fb, Metrics: NewMetrics(),
		Allowed: func(_ context.Context, a netip.Addr) bool {
			asked++
			return allowed.Contains(a)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(30 * time.Millisecond) // the follower has opened the file at its end
	var lines []string
	for i := 0; i < 5; i++ {
		lines = append(lines, failLine("198.51.100.21", i), failLine("203.0.113.5", i))
	}
	appendLines(t, log, lines...)
	waitFor(t, "ban", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.5")) })
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fb.Has(compile.SetBanned, netip.MustParseAddr("198.51.100.21")) {
		t.Error("a source in the allowed list was banned")
	}
	if asked == 0 {
		t.Error("the allowed list was never asked")
	}
}
