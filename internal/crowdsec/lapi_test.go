package crowdsec_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/crowdsec"
	"github.com/sipwall/sipwall/internal/crowdsec/lapitest"
)

// memSink is a Sink that keeps the list in memory, to test the bouncer's
// picture against a real LAPI without a kernel (the kernel tests of the
// set store cover the writes).
type memSink struct {
	mu   sync.Mutex
	list map[netip.Prefix]time.Time
	txs  int
}

func (m *memSink) Apply(_ context.Context, ch *crowdsec.Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.txs++
	if ch.Full || m.list == nil {
		m.list = map[netip.Prefix]time.Time{}
	}
	for _, b := range ch.Set {
		m.list[b.Prefix] = b.Until
	}
	for _, p := range ch.Del {
		delete(m.list, p)
	}
	return nil
}

func (m *memSink) has(p string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.list[netip.MustParsePrefix(p)]
	return u, ok
}

func TestBouncerAgainstLAPI(t *testing.T) {
	lapi := lapitest.Start(t, "", "")
	key := lapi.AddBouncer(t, "sipwall-a")
	c, err := crowdsec.NewClient(crowdsec.Config{URL: lapi.URL, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lapi.Cscli(t, "decisions", "add", "-i", "203.0.113.7", "-d", "1h", "-R", "ssh-bf")
	lapi.Cscli(t, "decisions", "add", "-r", "100.80.0.0/24", "-d", "2h", "-R", "range")
	lapi.Cscli(t, "decisions", "add", "-i", "2001:db8::66", "-d", "3h", "-R", "v6")
	lapi.Cscli(t, "decisions", "add", "-r", "2001:db8:77::/48", "-d", "3h", "-R", "v6range")
	lapi.Cscli(t, "decisions", "add", "-i", "203.0.113.9", "-d", "1h", "-t", "captcha")

	sink := &memSink{}
	b := &crowdsec.Bouncer{Client: c, Decisions: crowdsec.NewDecisions(nil), Sink: sink}
	ch, err := b.Once(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Full || len(ch.Set) != 4 || len(ch.Skipped) != 1 {
		t.Fatalf("startup: %d set, %d skipped: %+v", len(ch.Set), len(ch.Skipped), ch)
	}
	for _, p := range []string{"203.0.113.7/32", "100.80.0.0/24", "2001:db8::66/128", "2001:db8:77::/48"} {
		if _, ok := sink.has(p); !ok {
			t.Errorf("%s not enforced after the startup pull", p)
		}
	}
	// Extension: a second, longer decision for the same address.
	lapi.Cscli(t, "decisions", "add", "-i", "203.0.113.7", "-d", "8h", "-R", "longer")
	if _, err := b.Once(ctx, false); err != nil {
		t.Fatal(err)
	}
	if u, _ := sink.has("203.0.113.7/32"); time.Until(u) < 7*time.Hour {
		t.Errorf("extension not refreshed: until %v", u)
	}
	// Deletion of every decision for the address lifts it; a second pull is empty.
	lapi.Cscli(t, "decisions", "delete", "-i", "203.0.113.7")
	if _, err := b.Once(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.has("203.0.113.7/32"); ok {
		t.Error("203.0.113.7 still enforced after its decisions were deleted")
	}
	ch, err = b.Once(ctx, false)
	if err != nil || !ch.Empty() {
		t.Fatalf("idle pull: %+v, %v", ch, err)
	}
	// Re-added: enforced again.
	lapi.Cscli(t, "decisions", "add", "-i", "203.0.113.7", "-d", "1h")
	if _, err := b.Once(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.has("203.0.113.7/32"); !ok {
		t.Error("re-added decision not enforced")
	}

	// A wrong key is refused with ErrUnauthorized.
	bad, _ := crowdsec.NewClient(crowdsec.Config{URL: lapi.URL, APIKey: "wrong"})
	if _, err := bad.Pull(ctx, true, nil, nil); !errors.Is(err, crowdsec.ErrUnauthorized) {
		t.Errorf("wrong key: %v", err)
	}
}

func TestWatcherPushReachesOtherBouncers(t *testing.T) {
	lapi := lapitest.Start(t, "", "")
	pw := lapi.AddMachine(t, "pbx1")
	keyB := lapi.AddBouncer(t, "node-b")
	a, err := crowdsec.NewClient(crowdsec.Config{URL: lapi.URL, MachineID: "pbx1", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	err = a.Push(ctx, []crowdsec.Alert{crowdsec.Report{
		Kind: "scanner", Source: netip.MustParseAddr("198.51.100.23"), For: time.Hour,
		Start: now, Stop: now, Message: "User-Agent friendly-scanner",
		Events: []crowdsec.Event{{Time: now, Meta: map[string]string{"user_agent": "friendly-scanner", "service": "sip"}}},
	}.ToAlert()})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := crowdsec.NewClient(crowdsec.Config{URL: lapi.URL, APIKey: keyB})
	s, err := b.Pull(ctx, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found *crowdsec.Decision
	for i := range s.New {
		if s.New[i].Value == "198.51.100.23" {
			found = &s.New[i]
		}
	}
	if found == nil {
		t.Fatalf("the pushed ban is not in node B's pull: %+v", s.New)
	}
	if found.Scenario != "sipwall/scanner" || !strings.EqualFold(found.Scope, "ip") || found.Type != "ban" {
		t.Errorf("decision %+v", *found)
	}
	if d, err := time.ParseDuration(found.Duration); err != nil || d < 59*time.Minute {
		t.Errorf("duration %q", found.Duration)
	}
	// A wrong password is refused.
	bad, _ := crowdsec.NewClient(crowdsec.Config{URL: lapi.URL, MachineID: "pbx1", Password: "nope"})
	if err := bad.Push(ctx, []crowdsec.Alert{}); !errors.Is(err, crowdsec.ErrUnauthorized) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key")
	os.WriteFile(good, []byte("abc123\n"), 0o600)
	if s, err := crowdsec.ReadSecret(good); err != nil || s != "abc123" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("abc123\n"), 0o644)
	if _, err := crowdsec.ReadSecret(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	if _, err := crowdsec.ReadSecret(link); err == nil {
		t.Error("a symlinked key was read")
	}
}
