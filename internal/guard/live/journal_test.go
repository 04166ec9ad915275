package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

// journalEntry is a chan_sip failure as the journal holds it (Asterisk's
// syslog channel: no timestamp, the level first).
func journalEntry(addr string, i int) string {
	msg := fmt.Sprintf("NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:%d@pbx>' failed for '%s:5060' - Wrong password", 100+i, addr)
	b, _ := json.Marshal(map[string]string{"__CURSOR": fmt.Sprintf("s=x;i=%d", i), "MESSAGE": msg})
	return string(b) + "\n"
}

// TestJournalFailuresBan: a guard.logs entry journal:asterisk.service runs
// journalctl for that unit (a fake one, first in PATH); its entries ban
// like a log file's lines. The fake exits after three entries: it is
// started again after the last cursor, and the next two entries complete
// the ban.
func TestJournalFailuresBan(t *testing.T) {
	bin := t.TempDir()
	var first, second strings.Builder
	for i := 1; i <= 3; i++ {
		first.WriteString(journalEntry("203.0.113.9", i))
	}
	for i := 4; i <= 5; i++ {
		second.WriteString(journalEntry("203.0.113.9", i))
	}
	os.WriteFile(filepath.Join(bin, "out1"), []byte(first.String()), 0o644)
	os.WriteFile(filepath.Join(bin, "out2"), []byte(second.String()), 0o644)
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s/args
n=$(wc -l < %[1]s/args)
cat %[1]s/out$n 2>/dev/null
[ "$n" -ge 2 ] && exec sleep 60
exit 1
`, bin)
	if err := os.WriteFile(filepath.Join(bin, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	state := t.TempDir()
	fb := &ban.Fake{}
	m := NewMetrics()
	g, err := New(Config{
		Logs: []string{"journal:asterisk.service"}, StateDir: state,
		Jail:   jail.Config{MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour},
		Banner: fb, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	addr := netip.MustParseAddr("203.0.113.9")
	deadline := time.Now().Add(5 * time.Second)
	for !fb.Has(compile.SetBanned, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("not banned; lists:\n%s", fb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := httptest.NewServer(Handler(m, g.h))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	for _, s := range []string{
		`sipwall_guard_events_total{input="journal",type="RegistrationFailed"} 5`,
		`sipwall_guard_input_up{input="journal asterisk.service"} 1`,
		`sipwall_guard_errors_total{op="journal"} 1`,
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
	args, _ := os.ReadFile(filepath.Join(bin, "args"))
	runs := strings.Split(strings.TrimSpace(string(args)), "\n")
	if len(runs) != 2 || !strings.Contains(runs[0], "--unit asterisk.service") || !strings.HasSuffix(runs[1], "--after-cursor s=x;i=3") {
		t.Errorf("journalctl runs:\n%s", args)
	}
	b, err := os.ReadFile(filepath.Join(state, "guard-journal-asterisk.service.json"))
	if err != nil || !strings.Contains(string(b), `"cursor":"s=x;i=5"`) {
		t.Errorf("cursor state %s (%v)", b, err)
	}
}
