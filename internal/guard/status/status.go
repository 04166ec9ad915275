// Package status is the file through which a running `sipwall guard` says
// that it is alive, and for what: its process, the backend and policy it
// enforces, when it started, its last event and its inputs' problems. Guard
// rewrites the file every Every seconds in its state directory; apply reads
// it before loading a ruleset whose SIP protection needs guard (nftables:
// the hostname knock), and status shows it.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the status file in sipwall's state directory.
const FileName = "guard.status"

// Every is how often a running guard rewrites the file; a file older than
// three periods is the trace of a guard that is gone.
const Every = 5 * time.Second

// Status is what a running guard says of itself.
type Status struct {
	PID        int       `json:"pid"`
	Backend    string    `json:"backend"`
	PolicyFile string    `json:"policy_file,omitempty"`
	PolicyHash string    `json:"policy_hash,omitempty"`
	Mode       string    `json:"mode,omitempty"`
	Inspect    bool      `json:"inspect"`
	Started    time.Time `json:"started"`
	Updated    time.Time `json:"updated"`
	// LastEvent is the time of the last security event or inspector
	// decision, LastEventWhat says what it was.
	LastEvent     time.Time `json:"last_event,omitzero"`
	LastEventWhat string    `json:"last_event_what,omitempty"`
	// Problems are the inputs that do not work (a log that cannot be
	// read, an AMI connection refused).
	Problems []string `json:"problems,omitempty"`
}

// Path is the status file of state directory dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Write replaces the status file atomically.
func Write(dir string, s Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return fmt.Errorf("guard status: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("guard status: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("guard status: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("guard status: %w", err)
	}
	if err := os.Rename(tmp.Name(), Path(dir)); err != nil {
		return fmt.Errorf("guard status: %w", err)
	}
	return nil
}

// Remove deletes the status file if process pid wrote it (a guard that
// stops cleanly says so).
func Remove(dir string, pid int) {
	if s, err := Read(dir); err == nil && s.PID == pid {
		os.Remove(Path(dir))
	}
}

// Read reads the status file; a missing file satisfies errors.Is(err,
// fs.ErrNotExist).
func Read(dir string) (*Status, error) {
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("guard status %s: %w", Path(dir), err)
	}
	return &s, nil
}

// Check says whether a guard is running for state directory dir at time
// now: its status file exists, was rewritten within three periods, and its
// process is alive. why says what is wrong when it is not running.
func Check(dir string, now time.Time) (s *Status, running bool, why string) {
	s, err := Read(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, false, "sipwall guard has never run with state directory " + dir
	case err != nil:
		return nil, false, err.Error()
	case !alive(s.PID):
		return s, false, fmt.Sprintf("sipwall guard (pid %d) is gone since %s", s.PID, s.Updated.Format(time.RFC3339))
	case now.Sub(s.Updated) > 3*Every:
		return s, false, fmt.Sprintf("sipwall guard (pid %d) has not said it is alive since %s", s.PID, s.Updated.Format(time.RFC3339))
	}
	return s, true, ""
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
