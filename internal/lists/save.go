package lists

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
)

// FileVersion is the version of the saved-lists file this sipwall writes.
const FileVersion = 1

// DefaultFile is the saved-lists file in a state directory.
func DefaultFile(stateDir string) string { return filepath.Join(stateDir, "lists.json") }

// Previous is the previous generation of a saved-lists file.
func Previous(path string) string { return path + ".1" }

const magic = "sipwall-lists"

// savedEntry is one entry in the file. Expiry is absolute, so that the time
// a machine spends powered off counts against a ban.
type savedEntry struct {
	List      string     `json:"list"`
	Addr      string     `json:"addr"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

type savedFile struct {
	SavedAt time.Time    `json:"saved_at"`
	Backend string       `json:"backend"`
	Entries []savedEntry `json:"entries"`
}

// encodeFile writes the header line "sipwall-lists VERSION sha256:HEX" and
// the JSON body the checksum covers.
func encodeFile(f *savedFile) ([]byte, error) {
	body, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	head := fmt.Sprintf("%s %d sha256:%s\n", magic, FileVersion, hex.EncodeToString(sum[:]))
	return append([]byte(head), body...), nil
}

// NewerError is a file written by a newer sipwall.
type NewerError struct {
	Path    string
	Version int
}

func (e *NewerError) Error() string {
	return fmt.Sprintf("%s was written by a newer sipwall (format %d, this one reads %d): upgrade sipwall; nothing changed", e.Path, e.Version, FileVersion)
}

// readFile reads and verifies a saved-lists file.
func readFile(path string) (*savedFile, error) {
	data, err := apply.ReadRegular(path)
	if err != nil {
		return nil, err
	}
	head, body, ok := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(head))
	if len(f) == 0 || f[0] != magic {
		// Nothing of the file is shown: it may be another file's content.
		return nil, fmt.Errorf("%s is not a sipwall lists file (it does not start with %q)", path, magic)
	}
	if !ok {
		return nil, fmt.Errorf("%s is truncated (no header line)", path)
	}
	if len(f) != 3 || !strings.HasPrefix(f[2], "sha256:") {
		return nil, fmt.Errorf("%s: bad header line (want %q VERSION sha256:HEX)", path, magic)
	}
	v, err := strconv.Atoi(f[1])
	if err != nil || v < 1 {
		return nil, fmt.Errorf("%s: bad format version %q", path, f[1])
	}
	if v > FileVersion {
		return nil, &NewerError{Path: path, Version: v}
	}
	sum := sha256.Sum256(body)
	if got, want := hex.EncodeToString(sum[:]), strings.TrimPrefix(f[2], "sha256:"); got != want {
		return nil, fmt.Errorf("%s is corrupt or truncated (checksum mismatch: %d bytes of body)", path, len(body))
	}
	var sf savedFile
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for i, e := range sf.Entries {
		if err := CheckList(e.List); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %v", path, i+1, err)
		}
		if _, err := parsePrefix(e.Addr); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %v", path, i+1, err)
		}
	}
	return &sf, nil
}

// SaveResult says what Save wrote.
type SaveResult struct {
	Path    string
	Entries int
	// Rotated is true when the file it replaced became Previous(Path).
	Rotated bool
	// Note says something the caller should show (a corrupt file that was
	// not kept as the previous generation).
	Note string
}

// Save writes every list, with absolute expiry times, to path: the file it
// replaces becomes path.1 when it is valid, and the new one is written
// atomically (temporary file, fsync, rename).
func (s *Store) Save(ctx context.Context, path string) (*SaveResult, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	entries, err := s.Kernel.Read(ctx, s.lists()...)
	if err != nil {
		return nil, err
	}
	sortEntries(entries)
	now := s.now().UTC().Truncate(time.Second)
	sf := &savedFile{SavedAt: now, Backend: string(s.Name()), Entries: make([]savedEntry, 0, len(entries))}
	for _, e := range entries {
		se := savedEntry{List: e.List, Addr: e.Addr(), Comment: e.Comment}
		if e.Remaining > 0 {
			t := now.Add(e.Remaining)
			se.ExpiresAt = &t
		}
		sf.Entries = append(sf.Entries, se)
	}
	data, err := encodeFile(sf)
	if err != nil {
		return nil, err
	}
	return saveFile(path, data, len(entries))
}

// saveFile writes data as path's new generation; the file it replaces
// becomes Previous(path) when it is valid. The old file is neither moved
// nor touched before the new one is complete on disk: a full disk leaves
// both generations as they were.
func saveFile(path string, data []byte, entries int) (*SaveResult, error) {
	res := &SaveResult{Path: path, Entries: entries}
	keep := false
	if _, err := os.Lstat(path); err == nil {
		var newer *NewerError
		switch _, rerr := readFile(path); {
		case rerr == nil:
			keep, res.Rotated = true, true
		case errors.As(rerr, &newer):
			return nil, fmt.Errorf("save: %w", rerr)
		default:
			res.Note = fmt.Sprintf("replaced %s, which was unreadable (%v); %s stays the previous generation", path, rerr, Previous(path))
		}
	}
	if err := apply.WriteGenerations(path, Previous(path), data, 0o600, keep); err != nil {
		return nil, fmt.Errorf("save: %w; %s and %s are unchanged", err, path, Previous(path))
	}
	return res, nil
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	// From is the file the lists came from.
	From string
	// FellBack explains why From is the previous generation ("" when not).
	FellBack string
	// SavedAt is when From was written.
	SavedAt time.Time
	// Restored counts the entries put back, Expired those whose time ran
	// out since the save, Skipped those the applied ruleset cannot hold.
	Restored, Expired, Skipped int
	Warnings                   []string
}

// ErrNothingSaved is returned when neither generation of the file exists.
var ErrNothingSaved = errors.New("no saved lists")

// Restore puts the entries saved in path (or, when it is corrupt or
// truncated, in path.1, and says so in FellBack) back in the kernel's
// lists, in one transaction, with the time they had left. Entries already
// listed take the saved timeout. When neither file is readable it returns
// an error and changes nothing.
func (s *Store) Restore(ctx context.Context, path string) (*RestoreResult, error) {
	sf, from, fell, err := loadGenerations(path)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{From: from, FellBack: fell, SavedAt: sf.SavedAt}
	now := s.now()
	var entries []Entry
	for _, se := range sf.Entries {
		p, _ := parsePrefix(se.Addr) // checked by readFile
		e := Entry{List: se.List, Prefix: p, Comment: se.Comment}
		if se.ExpiresAt != nil {
			left := se.ExpiresAt.Sub(now)
			if left < time.Second {
				res.Expired++
				continue
			}
			e.Remaining = left.Truncate(time.Second)
			if max := s.maxTimeout(); max > 0 && e.Remaining > max {
				e.Remaining = max
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s (%s): %s left, shortened to the %s backend's limit %s", e.Addr(), e.List, left.Truncate(time.Second), s.Name(), max))
			}
		}
		if _, err := backend.SetFor(s.Sets, e.List, e.Prefix); err != nil {
			res.Skipped++
			if errors.Is(err, backend.ErrNoSet) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s (%s): the applied ruleset has no set for it (ipv6 off?); left out", e.Addr(), e.List))
			} else {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s (%s): a network, which this list cannot hold; left out", e.Addr(), e.List))
			}
			continue
		}
		entries = append(entries, e)
	}
	entries, covered := dedupe(entries)
	res.Skipped += len(covered)
	if len(entries) == 0 {
		return res, nil
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	n, w, err := s.Kernel.Add(ctx, entries)
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", from, err)
	}
	res.Warnings = append(res.Warnings, w...)
	res.Restored = n
	return res, nil
}

// loadGenerations reads path, or its previous generation when path is
// missing, corrupt or truncated; a file from a newer sipwall stops it.
func loadGenerations(path string) (*savedFile, string, string, error) {
	sf, err := readFile(path)
	if err == nil {
		return sf, path, "", nil
	}
	var newer *NewerError
	if errors.As(err, &newer) {
		return nil, "", "", err
	}
	prev := Previous(path)
	psf, perr := readFile(prev)
	switch {
	case perr == nil:
		why := err.Error()
		if errors.Is(err, os.ErrNotExist) {
			why = path + " is missing"
		}
		return psf, prev, why, nil
	case errors.As(perr, &newer):
		return nil, "", "", perr
	case errors.Is(err, os.ErrNotExist) && errors.Is(perr, os.ErrNotExist):
		return nil, "", "", fmt.Errorf("%w: neither %s nor %s exists", ErrNothingSaved, path, prev)
	}
	if errors.Is(perr, os.ErrNotExist) {
		perr = fmt.Errorf("%s does not exist", prev)
	}
	return nil, "", "", fmt.Errorf("cannot restore: %v, and the previous generation too: %v; nothing changed", err, perr)
}

// parsePrefix parses a saved address or network.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// lists are the lists the applied ruleset holds: Names that have a set,
// then the fed lists (fleet, feed-NAME) it has.
func (s *Store) lists() []string {
	var out []string
	for _, n := range Names {
		if len(backend.SetsOf(s.Sets, n)) > 0 {
			out = append(out, n)
		}
	}
	seen := map[string]bool{}
	for _, set := range s.Sets {
		if fed(set.List) && !seen[set.List] {
			seen[set.List] = true
			out = append(out, set.List)
		}
	}
	return out
}

// Lists are the lists the applied ruleset holds, in the order shown.
func (s *Store) Lists() []string { return s.lists() }
