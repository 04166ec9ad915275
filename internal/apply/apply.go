// Package apply loads a compiled ruleset into the kernel safely: one
// transaction per backend, only sipwall's own chains or table touched, the
// dynamic lists carried over, commit-confirm with a rollback that does not
// depend on the applying process, and the state that status, confirm and
// rollback read. What it does to the kernel it asks of the backend
// (package backend); it never tells one backend from another.
package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
)

// ErrNothingApplied is returned when no ruleset has been applied.
var ErrNothingApplied = errors.New("nothing applied: run sipwall apply first")

// Manager applies rulesets and keeps the state that confirm, rollback and
// status use.
type Manager struct {
	// Host is where the backends act (the current network namespace
	// when zero).
	Host     backend.Host
	StateDir string
	// LockWait is how long to wait for another sipwall (default 10 s).
	LockWait time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) backend(name backend.Name) (backend.Backend, error) {
	return backend.Open(name, m.Host)
}

// install loads gen with be, carrying the lists over from the sets of cur
// (the generation in the kernel now), and records the shapes of gen's sets
// when the caller did not.
func (m *Manager) install(ctx context.Context, be backend.Backend, gen, cur *Generation, st *State) error {
	var old []backend.Set
	if cur != nil && cur.Backend == gen.Backend {
		old = cur.Sets
	}
	if err := be.Install(ctx, backend.Ruleset{Files: gen.Files, Sets: gen.Sets}, old, &st.Memory); err != nil {
		return err
	}
	if gen.Sets == nil {
		sets, err := be.ReadSets(ctx)
		if err != nil {
			return err
		}
		gen.Sets = sets
	}
	return nil
}

// switchTo loads gen with be in place of st.Current. With the same
// backend the backend carries the lists over itself. Between backends the
// lists are read from the old backend's sets, the new ruleset is loaded
// and the entries written into its sets with their remaining timeouts;
// then the old backend's ruleset and sets are removed. When loading or
// filling the new ruleset fails, the new backend's part is removed again
// and the old one stays as it was.
func (m *Manager) switchTo(ctx context.Context, be backend.Backend, gen *Generation, st *State) error {
	cur := st.Current
	if cur == nil || cur.Backend == gen.Backend {
		return m.install(ctx, be, gen, cur, st)
	}
	old, err := m.backend(cur.Backend)
	if err != nil {
		return err
	}
	oldSets, err := m.CurrentSets(ctx, cur)
	if err != nil {
		return fmt.Errorf("read the %s lists: %w", cur.Backend, err)
	}
	entries, err := readLists(ctx, old.Store(oldSets), oldSets)
	if err != nil {
		return fmt.Errorf("read the %s lists to carry them over: %w", cur.Backend, err)
	}
	if err := m.install(ctx, be, gen, nil, st); err != nil {
		return err
	}
	var carry []backend.Entry
	for _, e := range entries {
		if s, err := backend.SetFor(gen.Sets, e.List, e.Prefix); err == nil && !s.Static {
			if max := be.MaxTimeout(); e.Remaining > max {
				e.Remaining = max
			}
			carry = append(carry, e)
		}
	}
	if len(carry) > 0 {
		if _, _, err := be.Store(gen.Sets).Add(ctx, carry); err != nil {
			m.purge(ctx, be, gen.Sets, st)
			return fmt.Errorf("carry the lists from %s to %s: %w; the %s ruleset stays", cur.Backend, gen.Backend, err, cur.Backend)
		}
	}
	if err := m.purge(ctx, old, oldSets, st); err != nil {
		return fmt.Errorf("applied with %s and the lists carried over, but removing the %s ruleset failed: %w", gen.Backend, cur.Backend, err)
	}
	return nil
}

// readLists reads every list held in sets that an apply carries over
// (the static sets are the policy's).
func readLists(ctx context.Context, store backend.SetStore, sets []backend.Set) ([]backend.Entry, error) {
	var lists []string
	seen := map[string]bool{}
	for _, s := range sets {
		if !s.Static && !seen[s.List] {
			seen[s.List] = true
			lists = append(lists, s.List)
		}
	}
	if len(lists) == 0 {
		return nil, nil
	}
	return store.Read(ctx, lists...)
}

// purge removes a backend's ruleset and its sets (the lists in them).
func (m *Manager) purge(ctx context.Context, be backend.Backend, sets []backend.Set, st *State) error {
	if err := be.Uninstall(ctx, &st.Memory); err != nil {
		return err
	}
	if d, ok := be.(backend.SetDestroyer); ok {
		return d.DestroySets(ctx, sets)
	}
	return nil
}

// lockState takes the lock and reads the state; the returned function
// releases the lock.
func (m *Manager) lockState() (*State, func(), error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	st, err := LoadState(m.StateDir)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return st, unlock, nil
}

func (m *Manager) lock() (func(), error) {
	wait := m.LockWait
	if wait == 0 {
		wait = 10 * time.Second
	}
	return Lock(m.StateDir, wait)
}

// ApplyOptions controls one apply.
type ApplyOptions struct {
	// Confirm, when > 0, makes the apply provisional: unless Confirm is
	// called within this time, the previous ruleset comes back.
	Confirm time.Duration
	// Watchdog starts the process that rolls back at the deadline unless
	// confirmed; it must outlive the caller. It returns the process id.
	Watchdog func(token string, deadline time.Time) (int, error)
}

// Result says what an apply did.
type Result struct {
	Backend  backend.Name
	Pending  *Pending
	Replaced *Generation
}

// Apply loads gen (Backend, Files, PolicyFile, PolicyHash set) into the
// kernel. On any failure the kernel keeps its previous ruleset and the
// state is unchanged.
func (m *Manager) Apply(ctx context.Context, gen *Generation, o ApplyOptions) (*Result, error) {
	st, unlock, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	be, err := m.backend(gen.Backend)
	if err != nil {
		return nil, err
	}
	if err := m.switchTo(ctx, be, gen, st); err != nil {
		return nil, err
	}
	gen.AppliedAt = m.now()
	if gen.Fingerprint, err = be.Fingerprint(ctx); err != nil {
		return nil, err
	}
	res := &Result{Backend: gen.Backend, Replaced: st.Current}
	// While a confirmation is pending, Previous stays the last ruleset that
	// was confirmed (or none): that is what a rollback must restore.
	if st.Pending == nil {
		st.Previous = st.Current
	}
	st.Current = gen
	st.Pending = nil
	if o.Confirm > 0 {
		tok := make([]byte, 8)
		rand.Read(tok)
		p := &Pending{Token: hex.EncodeToString(tok), Deadline: gen.AppliedAt.Add(o.Confirm)}
		st.Pending = p
		if err := st.Save(m.StateDir); err != nil {
			return nil, err
		}
		if o.Watchdog == nil {
			return nil, fmt.Errorf("commit-confirm needs a watchdog")
		}
		pid, err := o.Watchdog(p.Token, p.Deadline)
		if err != nil {
			// Without a watchdog nobody would roll back: undo now.
			unlock()
			m.rollback(ctx, p.Token, WhyNoWatchdog)
			return nil, fmt.Errorf("could not start the rollback watchdog, ruleset rolled back: %w", err)
		}
		p.PID = pid
		res.Pending = p
	}
	if err := st.Save(m.StateDir); err != nil {
		return nil, err
	}
	return res, nil
}

// Confirm keeps a provisional apply.
func (m *Manager) Confirm(ctx context.Context) error {
	st, unlock, err := m.lockState()
	if err != nil {
		return err
	}
	defer unlock()
	if st.Pending == nil {
		return fmt.Errorf("nothing to confirm: no apply is waiting for confirmation")
	}
	if m.now().After(st.Pending.Deadline) {
		return fmt.Errorf("too late: the deadline (%s) has passed and the previous ruleset is coming back", st.Pending.Deadline.Format(time.RFC3339))
	}
	st.Pending = nil
	return st.Save(m.StateDir)
}

// ErrNothingToRollBack is returned by a rollback that has nothing to go
// back to; it changes nothing.
var ErrNothingToRollBack = errors.New("nothing to roll back to")

// Rollback restores the previous ruleset, by hand. A rollback goes back one
// apply: with no previous ruleset it changes nothing and returns
// ErrNothingToRollBack, except while the host's first apply waits for
// confirmation, when it removes sipwall's ruleset as the deadline would.
// The lists keep their entries.
func (m *Manager) Rollback(ctx context.Context) (*Generation, error) {
	return m.rollback(ctx, "", WhyByHand)
}

// RollbackBecause is Rollback with the reason status records (one of the
// Why constants). WhyGuardFailed may remove sipwall's ruleset when there
// was none before the apply it undoes.
func (m *Manager) RollbackBecause(ctx context.Context, why string) (*Generation, error) {
	return m.rollback(ctx, "", why)
}

// RollbackIfPending is the watchdog's rollback: it happens only if the
// apply identified by token is still unconfirmed.
func (m *Manager) RollbackIfPending(ctx context.Context, token string) (bool, error) {
	st, err := LoadState(m.StateDir)
	if err != nil {
		return false, err
	}
	if st.Pending == nil || st.Pending.Token != token {
		return false, nil
	}
	_, err = m.rollback(ctx, token, WhyUnconfirmed)
	return err == nil, err
}

func (m *Manager) rollback(ctx context.Context, token, why string) (*Generation, error) {
	st, unlock, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if token != "" && (st.Pending == nil || st.Pending.Token != token) {
		return nil, nil // confirmed in the meantime
	}
	if st.Current == nil {
		last := ""
		if n := len(st.History); n > 0 {
			e := st.History[n-1]
			last = fmt.Sprintf(" (the last change was a %s at %s)", e.Kind, e.At.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: sipwall's ruleset is not applied%s; nothing changed", ErrNothingToRollBack, last)
	}
	prev := st.Previous
	if prev == nil && st.Pending == nil && why != WhyGuardFailed {
		return nil, fmt.Errorf("%w: the ruleset applied %s (%s) is the oldest sipwall keeps, and a rollback goes back one apply; nothing changed and the firewall stays as it is. `sipwall apply` loads another policy, `sipwall remove` takes sipwall off the host",
			ErrNothingToRollBack, st.Current.AppliedAt.UTC().Format(time.RFC3339), st.Current.PolicyFile)
	}
	cur, err := m.backend(st.Current.Backend)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		if err := cur.Uninstall(ctx, &st.Memory); err != nil {
			return nil, fmt.Errorf("rollback: %w", err)
		}
	} else {
		be, err := m.backend(prev.Backend)
		if err != nil {
			return nil, err
		}
		if err := m.switchTo(ctx, be, prev, st); err != nil {
			return nil, fmt.Errorf("rollback: %w", err)
		}
		if prev.Fingerprint, err = be.Fingerprint(ctx); err != nil {
			return nil, err
		}
	}
	st.record(Event{Kind: EventRollback, At: m.now().UTC(), Why: why, From: st.Current.Ref(), To: prev.Ref()})
	st.Current, st.Previous, st.Pending = prev, nil, nil
	return prev, st.Save(m.StateDir)
}

// Remove takes sipwall off the host: its ruleset and its sets go (the
// lists in them too: the caller saves them first), the base chain policies
// it changed get their old values back and the tables it created go. The
// state keeps no generation, and records the removal. With nothing applied
// it changes nothing and says so.
func (m *Manager) Remove(ctx context.Context) (*GenRef, error) {
	st, unlock, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st.Current == nil {
		return nil, fmt.Errorf("nothing to remove: sipwall's ruleset is not applied; nothing changed")
	}
	be, err := m.backend(st.Current.Backend)
	if err != nil {
		return nil, err
	}
	sets, err := m.CurrentSets(ctx, st.Current)
	if err != nil {
		return nil, err
	}
	if err := m.purge(ctx, be, sets, st); err != nil {
		return nil, fmt.Errorf("remove: %w", err)
	}
	from := st.Current.Ref()
	st.record(Event{Kind: EventRemove, At: m.now().UTC(), Why: WhyByHand, From: from})
	st.Current, st.Previous, st.Pending = nil, nil, nil
	return from, st.Save(m.StateDir)
}

// Status is what sipwall status reports.
type Status struct {
	Current  *Generation `json:"current"`
	Previous *Generation `json:"previous,omitempty"`
	Pending  *Pending    `json:"pending,omitempty"`
	// Drift is true when sipwall's part of the kernel differs from what
	// was applied; DriftDetail says how.
	Drift       bool   `json:"drift"`
	DriftDetail string `json:"drift_detail,omitempty"`
	// PolicyChanged is true when the policy file changed since the apply.
	PolicyChanged bool `json:"policy_changed"`
	// History is the rollbacks and removals, oldest first.
	History []Event `json:"history,omitempty"`
}

// Last is the latest rollback or removal (nil when none).
func (s *Status) Last() *Event {
	if len(s.History) == 0 {
		return nil
	}
	return &s.History[len(s.History)-1]
}

// Status reads the state and compares the kernel with it.
func (m *Manager) Status(ctx context.Context) (*Status, error) {
	st, err := LoadState(m.StateDir)
	if err != nil {
		return nil, err
	}
	s := &Status{Current: st.Current, Previous: st.Previous, Pending: st.Pending, History: st.History}
	if st.Current == nil {
		return s, nil
	}
	be, err := m.backend(st.Current.Backend)
	if err != nil {
		return nil, err
	}
	fp, err := be.Fingerprint(ctx)
	if err != nil {
		return nil, err
	}
	if fp != st.Current.Fingerprint {
		s.Drift = true
		s.DriftDetail = lineDiff(st.Current.Fingerprint, fp)
	}
	if h, err := HashFile(st.Current.PolicyFile); err == nil && h != st.Current.PolicyHash {
		s.PolicyChanged = true
	}
	return s, nil
}

// lineDiff lists lines missing from or added to b compared with a.
func lineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			if strings.TrimSpace(l) != "" {
				m[strings.TrimSpace(l)]++
			}
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && ca[l] > cb[l] {
			out = append(out, "- "+l)
			ca[l]--
		}
	}
	for _, l := range strings.Split(b, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && cb[l] > count(a)[l] {
			out = append(out, "+ "+l)
			cb[l]--
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("… and %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

// Reinstall loads the applied generation again, as it is, after the kernel
// lost it (a reboot): not a new generation, so the previous one stays what
// a rollback restores. The lists present are carried over.
func (m *Manager) Reinstall(ctx context.Context) (*Generation, error) {
	st, unlock, err := m.lockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st.Current == nil {
		return nil, ErrNothingApplied
	}
	be, err := m.backend(st.Current.Backend)
	if err != nil {
		return nil, err
	}
	if err := m.install(ctx, be, st.Current, st.Current, st); err != nil {
		return nil, err
	}
	if st.Current.Fingerprint, err = be.Fingerprint(ctx); err != nil {
		return nil, err
	}
	return st.Current, st.Save(m.StateDir)
}
