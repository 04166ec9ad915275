package follow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// headLen is how many leading bytes identify a file's content: a file whose
// first bytes changed was truncated and rewritten (copytruncate), even when
// it has grown past the old offset again.
const headLen = 128

// Options configure a Follower.
type Options struct {
	// StatePath is where SaveState keeps device, inode, offset and the first
	// bytes of the file; "" keeps no state.
	StatePath string
	// MaxLine is the line length limit (DefaultMaxLine if <= 0).
	MaxLine int
	// FromEnd starts at the end of the file when there is no usable state.
	FromEnd bool
	// LegacyStatePath is read when StatePath does not exist yet (a state
	// file under an earlier naming); the saved identity decides whether it
	// describes this file.
	LegacyStatePath string
	// Batch is the most lines one Poll delivers (default 4096), so that a
	// follower far behind saves its position as it catches up.
	Batch int
}

// DefaultBatch is the default of Options.Batch.
const DefaultBatch = 4096

// StatePath returns the state file in dir for the followed input name
// (a log path, a journal unit): prefix, a readable form of the name, and a
// hash of the exact name, so that distinct names never share a file
// ("a_b" and "a/b" do not).
func StatePath(dir, prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	readable := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimPrefix(name, "/"))
	if len(readable) > 64 {
		readable = readable[len(readable)-64:]
	}
	return filepath.Join(dir, prefix+readable+"-"+hex.EncodeToString(sum[:8])+".json")
}

// Stats counts what a Follower saw.
type Stats struct {
	Lines       int64 // lines delivered
	Overlong    int64 // lines skipped for being too long
	Rotations   int64 // renames followed
	Truncations int64 // truncations (copytruncate) followed
	// Recovered counts truncations whose unread tail was read from the
	// rotated copy (copytruncate while behind); Lost those whose copy was
	// not found: the lines after Offset in the truncated file were lost.
	Recovered int64
	Lost      int64
}

// Follower reads the lines appended to a file.
type Follower struct {
	path string
	opts Options

	f        *os.File
	dev, ino uint64
	base     int64 // file offset the LineReader started at
	lr       *LineReader
	head     []byte
	stats    Stats
	overlong int64 // lr.Overlong() already added to stats
}

// state is the JSON of the state file.
type state struct {
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
	Head   []byte `json:"head"`
}

// Open starts following path. With a state file from an earlier run it
// resumes after the last line delivered then: in the same file if device,
// inode and first bytes still match, or, when the file was rotated in the
// meantime, in the renamed file ("path.1") first. A missing file is not an
// error: it is picked up when it appears.
func Open(path string, opts Options) (*Follower, error) {
	fl := &Follower{path: path, opts: opts}
	st, err := fl.loadState()
	if err != nil {
		return nil, err
	}
	if st != nil {
		for _, p := range append([]string{path, path + ".1"}, rotated(path, 0)...) {
			ok, err := fl.resume(p, st)
			if err != nil {
				return nil, err
			}
			if ok {
				return fl, nil
			}
		}
	}
	if err := fl.openCurrent(opts.FromEnd); err != nil {
		return nil, err
	}
	return fl, nil
}

func (fl *Follower) loadState() (*state, error) {
	if fl.opts.StatePath == "" {
		return nil, nil
	}
	b, err := os.ReadFile(fl.opts.StatePath)
	if errors.Is(err, fs.ErrNotExist) && fl.opts.LegacyStatePath != "" {
		b, err = os.ReadFile(fl.opts.LegacyStatePath)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("follow %s: reading state: %w", fl.path, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		// A damaged state file must not stop the guard: start afresh.
		return nil, nil
	}
	return &st, nil
}

// resume opens p at the saved offset if it is the file the state describes.
func (fl *Follower) resume(p string, st *state) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("follow %s: %w", p, err)
	}
	dev, ino, size, err := identity(f)
	if err != nil || dev != st.Dev || ino != st.Inode || size < st.Offset || !headIs(f, st.Head) {
		f.Close()
		return false, err
	}
	if _, err := f.Seek(st.Offset, io.SeekStart); err != nil {
		f.Close()
		return false, fmt.Errorf("follow %s: %w", p, err)
	}
	fl.attach(f, dev, ino, st.Offset)
	fl.head = st.Head
	return true, nil
}

// openCurrent opens fl.path (if it exists) at its start or end.
func (fl *Follower) openCurrent(atEnd bool) error {
	f, err := os.Open(fl.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("follow %s: %w", fl.path, err)
	}
	dev, ino, size, err := identity(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("follow %s: %w", fl.path, err)
	}
	off := int64(0)
	if atEnd {
		off = size
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("follow %s: %w", fl.path, err)
		}
	}
	fl.attach(f, dev, ino, off)
	return nil
}

func (fl *Follower) attach(f *os.File, dev, ino uint64, off int64) {
	fl.f, fl.dev, fl.ino, fl.base = f, dev, ino, off
	fl.lr = NewLineReader(f, fl.opts.MaxLine)
	fl.head = nil
	fl.overlong = 0
}

func identity(f *os.File) (dev, ino uint64, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, errors.New("no inode information on this system")
	}
	return uint64(sys.Dev), uint64(sys.Ino), fi.Size(), nil
}

// headIs reports whether f starts with head (a file shorter than head
// cannot).
func headIs(f *os.File, head []byte) bool {
	if len(head) == 0 {
		return true
	}
	buf := make([]byte, len(head))
	n, _ := f.ReadAt(buf, 0)
	return bytes.Equal(buf[:n], head)
}

// Poll delivers the complete lines appended since the last call, at most
// Options.Batch of them, following a truncation of the file or its
// replacement by a new file at the same path. It reports whether more lines
// may be waiting (the batch was full). line is only valid during the call
// to fn.
func (fl *Follower) Poll(fn func(line []byte)) (more bool, err error) {
	if fl.f == nil {
		if err := fl.openCurrent(false); err != nil || fl.f == nil {
			return false, err
		}
	}
	if err := fl.checkTruncated(); err != nil {
		return false, err
	}
	budget := fl.batch()
	if budget, err = fl.drain(fn, budget); err != nil || budget == 0 {
		return budget == 0 && err == nil, err
	}
	fi, err := os.Stat(fl.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // renamed away, the new file is not there yet
	}
	if err != nil {
		return false, fmt.Errorf("follow %s: %w", fl.path, err)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (uint64(sys.Dev) == fl.dev && uint64(sys.Ino) == fl.ino) {
		return false, nil
	}
	// Rotated by rename (or reading a copytruncate copy): finish the old
	// file, including a last line the writer left without newline, then
	// start the new one from its start.
	if budget, err = fl.drain(fn, budget); err != nil || budget == 0 {
		return budget == 0 && err == nil, err
	}
	if p := fl.lr.Pending(); len(p) > 0 {
		fl.stats.Lines++
		fn(p)
	}
	fl.f.Close()
	fl.f = nil
	fl.stats.Rotations++
	if err := fl.openCurrent(false); err != nil || fl.f == nil {
		return false, err
	}
	budget, err = fl.drain(fn, budget)
	return budget == 0 && err == nil, err
}

func (fl *Follower) batch() int {
	if fl.opts.Batch > 0 {
		return fl.opts.Batch
	}
	return DefaultBatch
}

// checkTruncated restarts from the top when the file is shorter than what
// was read or its first bytes changed. If lines after the last one
// delivered were lost with the truncation (copytruncate while behind), they
// are read first from the rotated copy, when one is found: a file beside
// it named after it ("messages.1", "messages-20240301"), not compressed,
// with the same first bytes and at least as long as what was read.
func (fl *Follower) checkTruncated() error {
	fi, err := fl.f.Stat()
	if err != nil {
		return fmt.Errorf("follow %s: %w", fl.path, err)
	}
	readTo := fl.base + fl.lr.ReadBytes()
	if fi.Size() >= readTo && headIs(fl.f, fl.head) {
		return nil
	}
	fl.stats.Truncations++
	off := fl.Offset()
	if fi.Size() < off || !headIs(fl.f, fl.head) {
		if c, dev, ino := fl.findCopy(off); c != nil {
			fl.stats.Recovered++
			fl.f.Close()
			head := fl.head
			fl.attach(c, dev, ino, off)
			fl.head = head
			return nil
		}
		if fi.Size() > 0 || off > 0 {
			fl.stats.Lost++
		}
	}
	if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("follow %s: %w", fl.path, err)
	}
	fl.attach(fl.f, fl.dev, fl.ino, 0)
	return nil
}

// findCopy looks for the copy copytruncate made of the file read to off,
// and opens it at off.
func (fl *Follower) findCopy(off int64) (*os.File, uint64, uint64) {
	if len(fl.head) == 0 {
		return nil, 0, 0
	}
	for _, p := range rotated(fl.path, off) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		dev, ino, size, err := identity(f)
		if err == nil && (dev != fl.dev || ino != fl.ino) && size >= off && headIs(f, fl.head) {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				return f, dev, ino
			}
		}
		f.Close()
	}
	return nil, 0, 0
}

// rotated lists the rotated forms of path beside it ("messages.1",
// "messages-20240301"), not compressed, at least minSize bytes long, the
// newest eight first.
func rotated(path string, minSize int64) []string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type cand struct {
		path string
		mod  time.Time
	}
	var cands []cand
	for _, e := range entries {
		n := e.Name()
		if len(n) <= len(base) || !strings.HasPrefix(n, base) || (n[len(base)] != '.' && n[len(base)] != '-') || !e.Type().IsRegular() {
			continue
		}
		switch filepath.Ext(n) {
		case ".gz", ".xz", ".bz2", ".zst", ".lz4", ".json":
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() >= minSize {
			cands = append(cands, cand{filepath.Join(dir, n), info.ModTime()})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return b.mod.Compare(a.mod) })
	out := make([]string, 0, min(len(cands), 8))
	for _, c := range cands[:min(len(cands), 8)] {
		out = append(out, c.path)
	}
	return out
}

// drain delivers up to budget lines and returns the budget left.
func (fl *Follower) drain(fn func([]byte), budget int) (int, error) {
	for budget > 0 {
		line, err := fl.lr.Next()
		fl.stats.Overlong += fl.lr.Overlong() - fl.overlong
		fl.overlong = fl.lr.Overlong()
		if err != nil {
			fl.remember()
			if errors.Is(err, io.EOF) {
				return budget, nil
			}
			return budget, fmt.Errorf("follow %s: %w", fl.path, err)
		}
		fl.stats.Lines++
		budget--
		fn(line)
	}
	fl.remember()
	return 0, nil
}

// remember keeps the file's first bytes, once there are enough of them or
// they are all the file has.
func (fl *Follower) remember() {
	if len(fl.head) >= headLen {
		return
	}
	buf := make([]byte, headLen)
	n, _ := fl.f.ReadAt(buf, 0)
	if n > len(fl.head) && bytes.HasPrefix(buf[:n], fl.head) {
		fl.head = buf[:n]
	}
}

// Offset returns the file offset after the last line delivered.
func (fl *Follower) Offset() int64 {
	if fl.lr == nil {
		return 0
	}
	return fl.base + fl.lr.Offset()
}

// Stats returns the counters.
func (fl *Follower) Stats() Stats { return fl.stats }

// SaveState writes device, inode, offset and first bytes to the state file,
// atomically (write and rename). Call it after the lines a Poll delivered
// are dealt with: a restart resumes after them, so no line counts twice.
func (fl *Follower) SaveState() error {
	if fl.opts.StatePath == "" || fl.f == nil {
		return nil
	}
	b, err := json.Marshal(state{Dev: fl.dev, Inode: fl.ino, Offset: fl.Offset(), Head: fl.head})
	if err != nil {
		return fmt.Errorf("follow %s: %w", fl.path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(fl.opts.StatePath), ".follow-state-*")
	if err != nil {
		return fmt.Errorf("follow %s: saving state: %w", fl.path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("follow %s: saving state: %w", fl.path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("follow %s: saving state: %w", fl.path, err)
	}
	if err := os.Rename(tmp.Name(), fl.opts.StatePath); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("follow %s: saving state: %w", fl.path, err)
	}
	return nil
}

// Run polls every interval until ctx ends, saving the state after every
// poll that delivered lines: after each batch, so a follower far behind
// keeps its position as it catches up. A full batch is followed at once by
// the next poll.
func (fl *Follower) Run(ctx context.Context, interval time.Duration, fn func(line []byte)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		before := fl.stats.Lines
		more, err := fl.Poll(fn)
		if err != nil {
			return err
		}
		if fl.stats.Lines != before {
			if err := fl.SaveState(); err != nil {
				return err
			}
		}
		if more {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the file.
func (fl *Follower) Close() error {
	if fl.f == nil {
		return nil
	}
	err := fl.f.Close()
	fl.f = nil
	return err
}
