// Package journal follows the systemd journal of one unit (Asterisk's, for
// sipwall guard) through journalctl, run as a child process:
//
//	journalctl --follow --unit UNIT --output json --output-fields MESSAGE --all --quiet --no-pager (-n 0 | --after-cursor C | --since @T)
//
// and delivers each entry's MESSAGE. The JSON output carries every entry's
// cursor, so when journalctl exits (it is restarted with backoff: 0.5 s
// doubling to 30 s) or guard restarts (the cursor is kept in a state file),
// reading resumes after the last entry delivered: nothing is read twice and
// nothing is skipped. Without a cursor the journal is read from its end, as
// log files are.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure Run.
type Options struct {
	// Unit is the systemd unit whose entries are read (asterisk.service).
	Unit string
	// Journalctl is the program run (default "journalctl", found in PATH).
	Journalctl string
	// StatePath keeps the cursor of the last entry delivered; empty: none.
	StatePath string
	// Backoff is the first delay before journalctl is started again after it
	// exited (default 0.5 s); it doubles up to MaxBackoff (default 30 s) and
	// starts over once a run has lasted a minute.
	Backoff, MaxBackoff time.Duration
	// MaxEntry bounds one line of journalctl's output (default 1 MiB);
	// longer entries are skipped.
	MaxEntry int
	// OnState, when set, is told when journalctl runs (nil) and when it
	// exited (the reason).
	OnState func(err error)
}

// entry is one line of `journalctl -o json`. MESSAGE is a string, or an
// array of bytes when it is not valid UTF-8.
type entry struct {
	Cursor  string          `json:"__CURSOR"`
	Message json.RawMessage `json:"MESSAGE"`
}

// message returns the entry's MESSAGE as bytes.
func (e *entry) message() ([]byte, bool) {
	m := bytes.TrimSpace(e.Message)
	switch {
	case len(m) == 0 || bytes.Equal(m, []byte("null")):
		return nil, false
	case m[0] == '"':
		var s string
		if json.Unmarshal(m, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case m[0] == '[':
		var raw []int
		if json.Unmarshal(m, &raw) != nil {
			return nil, false
		}
		b := make([]byte, len(raw))
		for i, c := range raw {
			b[i] = byte(c)
		}
		return b, true
	}
	return nil, false
}

type state struct {
	Unit   string `json:"unit"`
	Cursor string `json:"cursor"`
}

// Follower follows one unit's journal.
type Follower struct {
	opt     Options
	mu      sync.Mutex
	cursor  string
	saved   string
	started time.Time // the first start, for a restart before any entry
}

// New prepares a Follower, reading the cursor saved in opt.StatePath.
func New(opt Options) (*Follower, error) {
	if opt.Unit == "" || strings.HasPrefix(opt.Unit, "-") {
		return nil, fmt.Errorf("journal: %q is not a unit name", opt.Unit)
	}
	if opt.Journalctl == "" {
		opt.Journalctl = "journalctl"
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff < opt.Backoff {
		opt.MaxBackoff = max(30*time.Second, opt.Backoff)
	}
	if opt.MaxEntry <= 0 {
		opt.MaxEntry = 1 << 20
	}
	f := &Follower{opt: opt}
	if opt.StatePath != "" {
		b, err := os.ReadFile(opt.StatePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("journal: %w", err)
		default:
			var s state
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, fmt.Errorf("journal: %s: %w", opt.StatePath, err)
			}
			if s.Unit == opt.Unit {
				f.cursor, f.saved = s.Cursor, s.Cursor
			}
		}
	}
	return f, nil
}

// Cursor is the cursor of the last entry delivered.
func (f *Follower) Cursor() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// args are journalctl's arguments for the next start.
func (f *Follower) args() []string {
	a := []string{"--follow", "--unit", f.opt.Unit, "--output", "json", "--output-fields", "MESSAGE", "--all", "--quiet", "--no-pager"}
	switch c := f.Cursor(); {
	case c != "":
		return append(a, "--after-cursor", c)
	case !f.started.IsZero():
		// Restarted before any entry came: from the first start on.
		return append(a, "--since", "@"+strconv.FormatInt(f.started.Unix(), 10))
	}
	return append(a, "--lines", "0")
}

// SaveState writes the cursor to the state file (when it changed).
func (f *Follower) SaveState() error {
	f.mu.Lock()
	c := f.cursor
	dirty := c != f.saved
	f.mu.Unlock()
	if f.opt.StatePath == "" || !dirty {
		return nil
	}
	b, _ := json.Marshal(state{Unit: f.opt.Unit, Cursor: c})
	tmp := f.opt.StatePath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(f.opt.StatePath), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.opt.StatePath); err != nil {
		return err
	}
	f.mu.Lock()
	f.saved = c
	f.mu.Unlock()
	return nil
}

// Run starts journalctl, delivers every entry's message to fn, and starts
// journalctl again with backoff whenever it exits, until ctx ends. It
// returns nil when ctx ends; the cursor is saved then and every few
// seconds while entries come.
func (f *Follower) Run(ctx context.Context, fn func(msg []byte)) error {
	defer f.SaveState()
	delay := f.opt.Backoff
	for ctx.Err() == nil {
		began := time.Now()
		err := f.once(ctx, fn)
		if f.started.IsZero() {
			f.started = began
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("journalctl exited")
		}
		if f.opt.OnState != nil {
			f.opt.OnState(err)
		}
		if time.Since(began) > time.Minute {
			delay = f.opt.Backoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, f.opt.MaxBackoff)
	}
	return nil
}

// once runs journalctl until it exits or ctx ends.
func (f *Follower) once(ctx context.Context, fn func(msg []byte)) error {
	cmd := exec.CommandContext(ctx, f.opt.Journalctl, f.args()...)
	cmd.WaitDelay = 2 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if f.opt.OnState != nil {
		f.opt.OnState(nil)
	}
	r := bufio.NewReaderSize(out, 64<<10)
	lastSave := time.Now()
	var long bool // inside an entry longer than MaxEntry
	var line []byte
	for {
		chunk, rerr := r.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			if !long && len(line)+len(chunk) <= f.opt.MaxEntry {
				line = append(line, chunk...)
			} else {
				long, line = true, line[:0]
			}
			continue
		}
		if len(chunk) > 0 {
			if !long {
				line = append(line, chunk...)
				f.deliver(line, fn)
			}
			long, line = false, line[:0]
		}
		if time.Since(lastSave) > 2*time.Second {
			f.SaveState()
			lastSave = time.Now()
		}
		if rerr != nil {
			break
		}
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	switch {
	case werr != nil && msg != "":
		return fmt.Errorf("journalctl: %w: %s", werr, msg)
	case werr != nil:
		return fmt.Errorf("journalctl: %w", werr)
	case msg != "":
		return fmt.Errorf("journalctl exited: %s", msg)
	}
	return nil
}

func (f *Follower) deliver(line []byte, fn func([]byte)) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var e entry
	if json.Unmarshal(line, &e) != nil {
		return
	}
	if m, ok := e.message(); ok {
		fn(m)
	}
	if e.Cursor != "" {
		f.mu.Lock()
		f.cursor = e.Cursor
		f.mu.Unlock()
	}
}

// tailBuffer keeps the last 1 KiB written to it (journalctl's complaints).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

var _ io.Writer = (*tailBuffer)(nil)

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 1024 {
		t.b = append(t.b[:0], t.b[len(t.b)-1024:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
