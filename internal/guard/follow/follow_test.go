package follow

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, fl *Follower) []string {
	t.Helper()
	var got []string
	for {
		more, err := fl.Poll(func(l []byte) { got = append(got, string(l)) })
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			return got
		}
	}
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func TestAppendAndPartialLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	fl, err := Open(log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	expect(t, "missing file", poll(t, fl))
	appendFile(t, log, "one\ntwo\nthr")
	expect(t, "first poll", poll(t, fl), "one", "two")
	appendFile(t, log, "ee\r\n")
	expect(t, "completed line", poll(t, fl), "three\r")
	expect(t, "nothing new", poll(t, fl))
}

func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "messages")
	appendFile(t, log, "a\nb\n")
	fl, err := Open(log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	expect(t, "before rotation", poll(t, fl), "a", "b")
	// Written to the old file after our last read, and a last line left
	// without newline, then logrotate renames and Asterisk reopens.
	appendFile(t, log, "c\nd")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	expect(t, "renamed, no new file yet", poll(t, fl), "c")
	appendFile(t, log, "e\n")
	expect(t, "after rotation", poll(t, fl), "d", "e")
	appendFile(t, log, "f\n")
	expect(t, "new file grows", poll(t, fl), "f")
	if s := fl.Stats(); s.Rotations != 1 || s.Lines != 6 {
		t.Errorf("stats %+v", s)
	}
}

func TestCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "full")
	appendFile(t, log, "[1] old line one\n[2] old line two\n")
	fl, err := Open(log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	expect(t, "before", poll(t, fl), "[1] old line one", "[2] old line two")

	// Truncated, then more written than was there before the next poll:
	// only the changed first bytes show it.
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, "[3] new line, longer than the old file was\n")
	expect(t, "truncated and regrown", poll(t, fl), "[3] new line, longer than the old file was")

	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, "[4] x\n")
	expect(t, "truncated, shorter", poll(t, fl), "[4] x")
	if s := fl.Stats(); s.Truncations != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestRestartDoesNotRepeat(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	stateFile := filepath.Join(dir, "state.json")
	opts := Options{StatePath: stateFile}
	appendFile(t, log, "1\n2\n")

	fl, err := Open(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "first run", poll(t, fl), "1", "2")
	if err := fl.SaveState(); err != nil {
		t.Fatal(err)
	}
	fl.Close()

	appendFile(t, log, "3\n")
	fl, err = Open(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "second run", poll(t, fl), "3")
	if err := fl.SaveState(); err != nil {
		t.Fatal(err)
	}
	fl.Close()

	// Rotated while stopped: the rest of the old file, then the new one.
	appendFile(t, log, "4\n")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, "5\n")
	fl, err = Open(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "third run, rotated meanwhile", poll(t, fl), "4", "5")
	if err := fl.SaveState(); err != nil {
		t.Fatal(err)
	}
	fl.Close()

	// Replaced by a shorter file with other content: start at its top.
	if err := os.WriteFile(log, []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err = Open(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "fourth run, truncated meanwhile", poll(t, fl), "6")
	fl.Close()

	// A damaged state file starts afresh rather than failing.
	if err := os.WriteFile(stateFile, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err = Open(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "damaged state", poll(t, fl), "6")
	fl.Close()
}

func TestFromEnd(t *testing.T) {
	log := filepath.Join(t.TempDir(), "security")
	appendFile(t, log, "history\n")
	fl, err := Open(log, Options{FromEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	appendFile(t, log, "new\n")
	expect(t, "from end", poll(t, fl), "new")
}

func TestOverlongAndBinaryLines(t *testing.T) {
	log := filepath.Join(t.TempDir(), "full")
	huge := strings.Repeat("' failed for '6.6.6.6' - Wrong password", 100000) // 4 MB
	bin := "\xff\xfe\x00 \xc3\x28 binary"
	appendFile(t, log, "before\n"+huge+"\n"+bin+"\n"+huge+"x\nafter\n")
	fl, err := Open(log, Options{MaxLine: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	expect(t, "lines", poll(t, fl), "before", bin, "after")
	if s := fl.Stats(); s.Overlong != 2 || s.Lines != 3 {
		t.Errorf("stats %+v", s)
	}
	if c := cap(fl.lr.buf); c > 1025 {
		t.Errorf("buffer grew to %d bytes for a 1024-byte limit", c)
	}
	if fi, _ := os.Stat(log); fl.Offset() != fi.Size() {
		t.Errorf("offset %d, file size %d", fl.Offset(), fi.Size())
	}
}

func TestReadAllNumbersLines(t *testing.T) {
	in := "a\n" + strings.Repeat("x", 5000) + "\nb\n\nc"
	var got []string
	lines, over, err := ReadAll(strings.NewReader(in), 100, func(n int, l []byte) {
		got = append(got, string(rune('0'+n))+":"+string(l))
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "numbered", got, "1:a", "3:b", "4:", "5:c")
	if over != 1 || lines != 5 {
		t.Errorf("overlong %d, lines %d", over, lines)
	}
}

func TestLineExactlyAtLimit(t *testing.T) {
	line := bytes.Repeat([]byte("y"), 100)
	var got [][]byte
	_, over, _ := ReadAll(bytes.NewReader(append(append(line, '\n'), append(line, 'z', '\n')...)), 100, func(_ int, l []byte) {
		got = append(got, bytes.Clone(l))
	})
	if len(got) != 1 || !bytes.Equal(got[0], line) || over != 1 {
		t.Errorf("got %d lines, overlong %d", len(got), over)
	}
}
