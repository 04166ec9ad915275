package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeJournalctl puts a journalctl script first in PATH. Run number N (from
// 1) records its arguments in DIR/args, prints DIR/outN, and then stays
// (DIR/stayN exists) or exits with status 1.
func fakeJournalctl(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s/args
n=$(wc -l < %[1]s/args)
cat %[1]s/out$n 2>/dev/null
if [ -e %[1]s/stay$n ]; then exec sleep 60; fi
echo "journalctl: run $n failed" >&2
exit 1
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

type collected struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collected) add(m []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(m))
	c.mu.Unlock()
}

func (c *collected) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func argLines(t *testing.T, dir string) []string {
	b, _ := os.ReadFile(filepath.Join(dir, "args"))
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestRestartResumesAfterCursor: journalctl exits after two entries; it is
// started again after the backoff, after the last cursor delivered, so no
// entry is read twice; a new follower with the state file resumes there
// too; without state the journal is read from its end.
func TestRestartResumesAfterCursor(t *testing.T) {
	dir := fakeJournalctl(t)
	write(t, filepath.Join(dir, "out1"),
		`{"__CURSOR":"s=1;i=1","MESSAGE":"NOTICE[566]: chan_sip.c:28926 handle_request_register: one"}`+"\n"+
			"not json\n"+
			`{"__CURSOR":"s=1;i=2","MESSAGE":[116,119,111,255]}`+"\n"+
			`{"__CURSOR":"s=1;i=3","MESSAGE":null}`+"\n")
	write(t, filepath.Join(dir, "out2"), `{"__CURSOR":"s=1;i=4","MESSAGE":"three"}`+"\n")
	write(t, filepath.Join(dir, "stay2"), "")
	statePath := filepath.Join(t.TempDir(), "state", "journal.json")

	var states []string
	var smu sync.Mutex
	f, err := New(Options{Unit: "asterisk.service", StatePath: statePath, Backoff: 50 * time.Millisecond,
		OnState: func(err error) {
			smu.Lock()
			defer smu.Unlock()
			if err == nil {
				states = append(states, "up")
			} else {
				states = append(states, "down: "+err.Error())
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	var got collected
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx, got.add) }()
	waitFor(t, "three messages", func() bool { return len(got.get()) == 3 })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("restarted after %s, before the backoff", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"NOTICE[566]: chan_sip.c:28926 handle_request_register: one", "two\xff", "three"}
	if g := got.get(); strings.Join(g, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q", g, want)
	}
	args := argLines(t, dir)
	if len(args) != 2 {
		t.Fatalf("journalctl ran %d times: %q", len(args), args)
	}
	for _, a := range []string{"--follow", "--unit asterisk.service", "--output json", "--lines 0"} {
		if !strings.Contains(args[0], a) {
			t.Errorf("first run %q lacks %q", args[0], a)
		}
	}
	if !strings.HasSuffix(args[1], "--after-cursor s=1;i=3") {
		t.Errorf("second run %q does not resume after the last cursor", args[1])
	}
	smu.Lock()
	if len(states) < 3 || states[0] != "up" || !strings.Contains(states[1], "run 1 failed") || states[2] != "up" {
		t.Errorf("states %q", states)
	}
	smu.Unlock()

	// A new follower (guard restarted) resumes from the state file.
	f2, err := New(Options{Unit: "asterisk.service", StatePath: statePath})
	if err != nil {
		t.Fatal(err)
	}
	if c := f2.Cursor(); c != "s=1;i=4" {
		t.Errorf("saved cursor %q, want s=1;i=4", c)
	}
	if a := strings.Join(f2.args(), " "); !strings.HasSuffix(a, "--after-cursor s=1;i=4") {
		t.Errorf("after a restart: %s", a)
	}
	// Another unit's state is not used.
	f3, err := New(Options{Unit: "kamailio.service", StatePath: statePath})
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(f3.args(), " "); !strings.HasSuffix(a, "--lines 0") {
		t.Errorf("another unit: %s", a)
	}
}

// TestBackoffGrows: a journalctl that keeps failing is started again after
// 20, 40, 80 ms…, not in a tight loop; one that was never seen delivering
// restarts from the first start's time.
func TestBackoffGrows(t *testing.T) {
	dir := fakeJournalctl(t)
	f, err := New(Options{Unit: "asterisk.service", Backoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	f.Run(ctx, func([]byte) {})
	args := argLines(t, dir)
	// Starts at 0, 20, 60, 140, then every 80 ms at the most: at most 14
	// in a second (a tight loop would make hundreds). A loaded machine
	// starts processes slowly, so the lower bound only asks for restarts.
	if n := len(args); n < 2 || n > 14 {
		t.Errorf("%d starts in 1 s with backoff 20 ms doubling to 80 ms", n)
	}
	if len(args) > 1 && !strings.Contains(args[1], "--since @") {
		t.Errorf("restart without a cursor: %q", args[1])
	}
}

func TestBadUnit(t *testing.T) {
	for _, u := range []string{"", "-f"} {
		if _, err := New(Options{Unit: u}); err == nil {
			t.Errorf("unit %q accepted", u)
		}
	}
}
