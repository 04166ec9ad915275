package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipwall/sipwall/internal/ir"
)

// DefaultStateDir is where sipwall keeps what it applied.
const DefaultStateDir = "/var/lib/sipwall"

// StateVersion is the version of the state file this sipwall writes.
const StateVersion = 1

// Generation is one applied ruleset.
type Generation struct {
	Backend    string            `json:"backend"`
	PolicyFile string            `json:"policy_file"`
	PolicyHash string            `json:"policy_hash"`
	AppliedAt  time.Time         `json:"applied_at"`
	Files      map[string]string `json:"files"`
	// Fingerprint is the kernel's own listing of sipwall's part right after
	// the apply, without counters and set contents: status compares it
	// with the kernel's listing now to tell drift.
	Fingerprint string `json:"fingerprint"`
	// Rules are the ruleset's rules where the kernel lists them, with
	// their kinds (from the renderer's listing): stats maps the kernel's
	// counters to them.
	Rules []ir.RuleRef `json:"rules,omitempty"`
}

// Pending is an apply waiting for `sipwall confirm`.
type Pending struct {
	Token    string    `json:"token"`
	Deadline time.Time `json:"deadline"`
	PID      int       `json:"watchdog_pid,omitempty"`
}

// State is what sipwall remembers between runs.
type State struct {
	Version  int         `json:"version"`
	Current  *Generation `json:"current,omitempty"`
	Previous *Generation `json:"previous,omitempty"`
	Pending  *Pending    `json:"pending,omitempty"`
	// BuiltinPolicies are the iptables base chain policies found before
	// sipwall first set them ("4 filter INPUT" → "ACCEPT"); removing
	// sipwall puts them back.
	BuiltinPolicies map[string]string `json:"builtin_policies,omitempty"`
	// CreatedTables are the iptables tables ("4 raw") that did not exist
	// before sipwall: removing sipwall removes them.
	CreatedTables map[string]bool `json:"created_tables,omitempty"`
}

// HashFile returns the SHA-256 of a file's contents, in hex.
func HashFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadState reads the state in dir; a missing file is an empty state.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: StateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state: %s is corrupt: %v", statePath(dir), err)
	}
	if s.Version > StateVersion {
		return nil, fmt.Errorf("state: %s was written by a newer sipwall (version %d, this one reads %d)", statePath(dir), s.Version, StateVersion)
	}
	return &s, nil
}

// Save writes the state atomically: temporary file, fsync, rename.
func (s *State) Save(dir string) error {
	s.Version = StateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteAtomic(statePath(dir), b, 0o600)
}

// WriteAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Lock takes the state directory's lock, waiting up to wait for another
// sipwall to finish. The returned function releases it.
func Lock(dir string, wait time.Duration) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			var once sync.Once
			return func() { once.Do(func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another sipwall is changing the firewall (lock %s held)", f.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
