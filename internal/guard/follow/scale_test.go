package follow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "[%06d] line\n", i)
	}
	return b.String()
}

func wantNumbered(t *testing.T, what string, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("%s: %d lines, want %d (%d to %d)", what, len(got), to-from+1, from, to)
	}
	for i, l := range got {
		if want := fmt.Sprintf("[%06d] line", from+i); l != want {
			t.Fatalf("%s: line %d is %q, want %q", what, i, l, want)
		}
	}
}

func savedOffset(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Offset
}

// A follower far behind saves its position batch by batch, not only when
// it reaches the end: killed in the middle, it resumes near where it was.
func TestPositionSavedEveryBatch(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	stateFile := filepath.Join(dir, "state.json")
	appendFile(t, log, numbered(1, 20000))
	fl, err := Open(log, Options{StatePath: stateFile, Batch: 500})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var offsetAt10000 int64
	err = fl.Run(ctx, time.Hour, func(line []byte) {
		n++
		if n == 10001 {
			// The lines up to 10,000 were dealt with in earlier batches.
			offsetAt10000 = savedOffset(t, stateFile)
			cancel() // and nothing is saved after this: as if killed
		}
	})
	if err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if want := int64(len(numbered(1, 10000))); offsetAt10000 != want {
		t.Fatalf("saved offset while line 10,001 is handled: %d, want %d (after line 10,000)", offsetAt10000, want)
	}
	fl.Close()
	// Restart from the state saved before line 10,001's batch was done.
	os.WriteFile(stateFile, mustStateAt(t, log, offsetAt10000), 0o600)
	fl2, err := Open(log, Options{StatePath: stateFile, Batch: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer fl2.Close()
	wantNumbered(t, "after restart", poll(t, fl2), 10001, 20000)
}

func mustStateAt(t *testing.T, path string, off int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev, ino, _, err := identity(f)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, headLen)
	n, _ := io.ReadFull(f, head)
	b, _ := json.Marshal(state{Dev: dev, Inode: ino, Offset: off, Head: head[:n]})
	return b
}

// copytruncate while the follower is behind: the lines it had not read yet
// are read from the copy, then the truncated file from its start; none is
// lost or repeated, with logrotate's ".1" and with its dateext naming, and
// across a restart in the middle of the copy.
func TestCopyTruncateWhileBehind(t *testing.T) {
	for _, copyName := range []string{"full.1", "full-20241201"} {
		t.Run(copyName, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "full")
			stateFile := filepath.Join(dir, "state.json")
			appendFile(t, log, numbered(1, 1000))
			opts := Options{StatePath: stateFile, Batch: 100}
			fl, err := Open(log, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			collect := func(l []byte) { got = append(got, string(l)) }
			if more, err := fl.Poll(collect); err != nil || !more {
				t.Fatalf("first batch: more %v, %v", more, err)
			}
			appendFile(t, log, numbered(1001, 1200))
			// logrotate copytruncate: copy, truncate; the writer goes on.
			data, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, copyName), data, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(log, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, log, numbered(1201, 1300))
			// Three batches from the copy, then a restart.
			for range 3 {
				if _, err := fl.Poll(collect); err != nil {
					t.Fatal(err)
				}
			}
			if err := fl.SaveState(); err != nil {
				t.Fatal(err)
			}
			fl.Close()
			fl, err = Open(log, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			got = append(got, poll(t, fl)...)
			wantNumbered(t, "every line once", got, 1, 1300)
			appendFile(t, log, numbered(1301, 1301))
			wantNumbered(t, "the truncated file grows", poll(t, fl), 1301, 1301)
		})
	}
}

func TestCopyTruncateWithoutCopyIsCounted(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "full")
	appendFile(t, log, numbered(1, 300))
	fl, err := Open(log, Options{Batch: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := fl.Poll(func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, numbered(301, 302))
	wantNumbered(t, "after the truncation", poll(t, fl), 301, 302)
	if s := fl.Stats(); s.Truncations != 1 || s.Lost != 1 || s.Recovered != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Every log path has its own state file: "a_b" and "a/b" differ.
func TestStatePathPerLogPath(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]string{}
	for _, p := range []string{"/var/log/a_b", "/var/log/a/b", "/var/log/a-b", "var/log/a_b", "/var/log/asterisk/messages", "/var/log/asterisk/messages.log"} {
		sp := StatePath(dir, "guard-", p)
		if other, ok := seen[sp]; ok {
			t.Errorf("%s and %s share %s", p, other, sp)
		}
		seen[sp] = p
		if filepath.Dir(sp) != dir || !strings.HasPrefix(filepath.Base(sp), "guard-") {
			t.Errorf("%s: state file %s", p, sp)
		}
	}
	// Two followers, one per path, each resuming its own file.
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	ab, aSlashB := filepath.Join(dir, "a_b"), filepath.Join(dir, "a", "b")
	appendFile(t, ab, numbered(1, 3))
	appendFile(t, aSlashB, numbered(1, 5))
	for _, p := range []string{ab, aSlashB} {
		fl, err := Open(p, Options{StatePath: StatePath(dir, "guard-", p)})
		if err != nil {
			t.Fatal(err)
		}
		poll(t, fl)
		if err := fl.SaveState(); err != nil {
			t.Fatal(err)
		}
		fl.Close()
	}
	appendFile(t, ab, numbered(4, 4))
	appendFile(t, aSlashB, numbered(6, 6))
	for p, want := range map[string]int{ab: 4, aSlashB: 6} {
		fl, err := Open(p, Options{StatePath: StatePath(dir, "guard-", p)})
		if err != nil {
			t.Fatal(err)
		}
		wantNumbered(t, p, poll(t, fl), want, want)
		fl.Close()
	}
}
