package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

// DefaultStateDir is where sipwall keeps what it applied.
const DefaultStateDir = "/var/lib/sipwall"

// StateVersion is the version of the state file this sipwall writes.
const StateVersion = 1

// Generation is one applied ruleset.
type Generation struct {
	Backend    backend.Name      `json:"backend"`
	PolicyFile string            `json:"policy_file"`
	PolicyHash string            `json:"policy_hash"`
	AppliedAt  time.Time         `json:"applied_at"`
	Files      map[string]string `json:"files"`
	// Fingerprint is the kernel's own listing of sipwall's part right after
	// the apply, without counters and set contents: status compares it
	// with the kernel's listing now to tell drift.
	Fingerprint string `json:"fingerprint"`
	// Sets are the names and shapes of the ruleset's sets, from the IR
	// (absent from state files of older versions: read from the kernel
	// on the next apply, and by Sets until then).
	Sets []backend.Set `json:"sets,omitempty"`
	// Rules are the ruleset's rules where the kernel lists them, with
	// their kinds (from the renderer's listing): stats maps the kernel's
	// counters to them.
	Rules []ir.RuleRef `json:"rules,omitempty"`
	// Open is what the ruleset leaves open, to whom (from the policy):
	// apply's summary, and the ports a diff shows opened and closed.
	Open []Opening `json:"open,omitempty"`
}

// Opening is one way into the host a ruleset leaves open.
type Opening struct {
	// Service is "SSH", "SIP", "SIP over TLS", "RTP", "accepted
	// service", "trusted", "trap".
	Service string `json:"service"`
	// Proto is "tcp", "udp" or "any".
	Proto string `json:"proto"`
	// Ports are the ports ("5060", "10000-20000", "any").
	Ports string `json:"ports"`
	// Who may reach them, in words.
	Who string `json:"who"`
}

// String is the opening in one line.
func (o Opening) String() string {
	return fmt.Sprintf("%s %s/%s: %s", o.Service, o.Proto, o.Ports, o.Who)
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
	// Memory is what the backends remember of the host's own objects.
	backend.Memory
	// History is the rollbacks and removals, oldest first (the last
	// MaxHistory of them).
	History []Event `json:"history,omitempty"`
	// SavedAt is when this state was written.
	SavedAt time.Time `json:"saved_at,omitzero"`
	// Checksum is "sha256:HEX" of the file as written with Checksum empty:
	// a truncated or damaged state.json is recognised, never acted on.
	// Files written before it existed have none and are read as they are.
	Checksum string `json:"checksum,omitempty"`
}

// MaxHistory is how many rollbacks and removals the state remembers.
const MaxHistory = 20

// Kinds of Event.
const (
	EventRollback = "rollback"
	EventRemove   = "remove"
)

// Reasons for a rollback.
const (
	// WhyUnconfirmed: the commit-confirm deadline passed without
	// `sipwall confirm`.
	WhyUnconfirmed = "unconfirmed"
	// WhyByHand: `sipwall rollback`.
	WhyByHand = "by hand"
	// WhyGuardFailed: the apply needed guard, which did not start.
	WhyGuardFailed = "guard did not start"
	// WhyNoWatchdog: the commit-confirm watchdog could not be started.
	WhyNoWatchdog = "the rollback watchdog did not start"
)

// Event is a rollback or a removal, as status shows it.
type Event struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	Why  string    `json:"why"`
	// From is the generation that was applied before; To the one applied
	// after (nil: none, sipwall's ruleset was removed).
	From *GenRef `json:"from,omitempty"`
	To   *GenRef `json:"to,omitempty"`
}

// GenRef names a generation: what status shows of it.
type GenRef struct {
	Backend    backend.Name `json:"backend"`
	PolicyFile string       `json:"policy_file"`
	PolicyHash string       `json:"policy_hash"`
	AppliedAt  time.Time    `json:"applied_at"`
}

// Ref is the GenRef of g (nil for nil).
func (g *Generation) Ref() *GenRef {
	if g == nil {
		return nil
	}
	return &GenRef{Backend: g.Backend, PolicyFile: g.PolicyFile, PolicyHash: g.PolicyHash, AppliedAt: g.AppliedAt}
}

// record adds e to the history, forgetting the oldest beyond MaxHistory.
func (s *State) record(e Event) {
	s.History = append(s.History, e)
	if n := len(s.History) - MaxHistory; n > 0 {
		s.History = append([]Event(nil), s.History[n:]...)
	}
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

// PreviousState is the previous generation of the state in dir: the
// state.json each Save replaces.
func PreviousState(dir string) string { return statePath(dir) + ".1" }

// LoadState reads the state in dir; a missing file is an empty state. A
// damaged file (truncated, checksum mismatch) is an error that says how to
// go on: with its previous generation when that one is intact, or afresh.
func LoadState(dir string) (*State, error) {
	path := statePath(dir)
	s, err := readState(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: StateVersion}, nil
	}
	if err == nil {
		for _, g := range []*Generation{s.Current, s.Previous} {
			if g != nil && g.Sets == nil {
				g.Sets = deriveSets(g)
			}
		}
	}
	if err == nil || errors.Is(err, ErrNewerState) {
		return s, err
	}
	prev := PreviousState(dir)
	ps, perr := readState(prev)
	if perr == nil {
		applied := "nothing applied"
		if ps.Current != nil {
			applied = "ruleset applied " + ps.Current.AppliedAt.UTC().Format(time.RFC3339)
		}
		return nil, fmt.Errorf("%v; its previous generation %s is intact (saved %s, %s): `mv %s %s` takes it back, then `sipwall status` shows what differs from the kernel; nothing changed",
			err, prev, ps.SavedAt.UTC().Format(time.RFC3339), applied, prev, path)
	}
	return nil, fmt.Errorf("%v, and there is no intact previous generation (%s: %v): remove %s to start afresh (the firewall keeps running as it is; the next `sipwall apply` takes it over, but iptables base chain policies sipwall changed before are then not put back by `sipwall remove`); nothing changed",
		err, prev, perr, path)
}

// ErrNewerState is a state file written by a newer sipwall.
var ErrNewerState = errors.New("written by a newer sipwall")

// readState reads and verifies one state file, never following a
// symbolic link.
func readState(path string) (*State, error) {
	b, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state: %s is damaged (%v: truncated or edited)", path, err)
	}
	if s.Version > StateVersion {
		return nil, fmt.Errorf("state: %s was %w (version %d, this one reads %d)", path, ErrNewerState, s.Version, StateVersion)
	}
	if s.Checksum != "" {
		want := s.Checksum
		if got, err := s.checksum(); err != nil || got != want {
			return nil, fmt.Errorf("state: %s is damaged (checksum mismatch: truncated or edited)", path)
		}
		s.Checksum = want
	}
	return &s, nil
}

// checksum returns the checksum of the state's encoding with Checksum empty.
func (s *State) checksum() (string, error) {
	s.Checksum = ""
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// readRegular reads a regular file without following a symbolic link in
// its last component, so that a link planted in the state directory cannot
// make sipwall read (or show) another file.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link; sipwall does not follow links for its own files", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(f)
}

// ReadRegular reads path, refusing a symbolic link (in the last component)
// and anything but a regular file.
func ReadRegular(path string) ([]byte, error) { return readRegular(path) }

// Save writes the state with its checksum; the state it replaces becomes
// PreviousState(dir) (see WriteGenerations).
func (s *State) Save(dir string) error {
	s.Version = StateVersion
	s.SavedAt = time.Now().UTC().Truncate(time.Millisecond)
	sum, err := s.checksum()
	if err != nil {
		return err
	}
	s.Checksum = sum
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	_, err = readState(statePath(dir))
	return WriteGenerations(statePath(dir), PreviousState(dir), b, 0o600, err == nil)
}

// WriteAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	return WriteGenerations(path, "", data, mode, false)
}

// WriteGenerations replaces path with data, keeping the file it replaces
// as prev when keepOld is set. The new generation is written beside the
// old one and synced to disk first; only then is the old one linked as
// prev and the new one renamed over path. path always holds a complete
// generation: a full disk or a crash leaves the old one (and prev) as
// they were.
func WriteGenerations(path, prev string, data []byte, mode os.FileMode, keepOld bool) error {
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
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if keepOld && prev != "" {
		if err := keepGeneration(path, prev); err != nil {
			return fmt.Errorf("write %s: keep the previous generation as %s: %w", path, prev, err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// keepGeneration makes prev a copy of path: a hard link (no space needed),
// or where links are not supported a copy written and synced first.
func keepGeneration(path, prev string) error {
	dir := filepath.Dir(prev)
	tmpName := filepath.Join(dir, fmt.Sprintf(".%s.%d.link", filepath.Base(prev), os.Getpid()))
	os.Remove(tmpName)
	if err := os.Link(path, tmpName); err != nil {
		data, rerr := readRegular(path)
		if rerr != nil {
			return rerr
		}
		return WriteGenerations(prev, "", data, 0o600, false)
	}
	if err := os.Rename(tmpName, prev); err != nil {
		os.Remove(tmpName)
		return err
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Lock takes the state directory's lock, waiting up to wait for another
// sipwall to finish. The returned function releases it.
func Lock(dir string, wait time.Duration) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("lock: %s is a symbolic link; remove it (sipwall does not follow links for its own files)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock: %s is not a regular file; remove it", path)
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

// NewGeneration is the generation of rs rendered as files for backend n,
// with the names and shapes of its sets.
func NewGeneration(n backend.Name, rs *ir.Ruleset, files map[string]string) (*Generation, error) {
	be, err := backend.Open(n, backend.Host{})
	if err != nil {
		return nil, err
	}
	l, err := render.List(rs, n)
	if err != nil {
		return nil, err
	}
	return &Generation{Backend: n, Files: files, Sets: be.Sets(rs), Rules: l.Refs(rs)}, nil
}

// deriveSets recovers the sets of a generation written before generations
// recorded them, from the IR: its policy file compiled again when the file
// is unchanged since the apply (the same hash). Otherwise nil: the sets
// are then read from the kernel (CurrentSets, and the next apply).
func deriveSets(g *Generation) []backend.Set {
	if g.PolicyFile == "" || g.PolicyHash == "" {
		return nil
	}
	if h, err := HashFile(g.PolicyFile); err != nil || h != g.PolicyHash {
		return nil
	}
	p, err := policy.LoadFile(g.PolicyFile)
	if err != nil {
		return nil
	}
	// Trusted hosts' addresses fill the trusted set; they do not change
	// the sets' names or shapes.
	resolved := map[string][]netip.Addr{}
	for _, h := range p.Trusted.Hosts {
		resolved[h.Name] = []netip.Addr{netip.IPv6Loopback()}
	}
	rs, err := compile.Compile(p, compile.Options{Backend: g.Backend, Resolved: resolved})
	if err != nil {
		return nil
	}
	be, err := backend.Open(g.Backend, backend.Host{})
	if err != nil {
		return nil
	}
	return be.Sets(rs)
}

// CurrentSets returns the sets of the applied generation: as recorded, or
// for a state file written before they were, as the kernel has them.
func (m *Manager) CurrentSets(ctx context.Context, g *Generation) ([]backend.Set, error) {
	if g.Sets != nil {
		return g.Sets, nil
	}
	be, err := m.backend(g.Backend)
	if err != nil {
		return nil, err
	}
	return be.ReadSets(ctx)
}
