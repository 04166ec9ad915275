// Package guard bans addresses from Asterisk security events. Its
// subpackages do the parts: events recognizes failures in log lines and AMI
// events, jail turns failures into ban decisions, follow reads growing log
// files across rotation and restarts.
//
// This package holds guard's setup from the policy (Setup: the guard
// section, validated with the command line's flags written onto it, read
// into Settings) and the daemon it runs (Daemon.Run, on package live), and
// the offline analysis behind "sipwall guard --scan-log": every matching
// line with its file, line number, event and address, and per address the
// verdict the thresholds would give — without touching the firewall, like
// fail2ban-regex.
//
// The scan keeps little per line and per source, so that a log of a
// distributed brute force (every line a failure, a different source every
// few lines) costs no more than the lines it reads: a failure is 16 bytes
// while reading (its time, its source, its kind) and 9 once grouped by
// source, a source 84 to 92 bytes (16 of address, 8 to 16 of hash slots, 4 of
// offset, 56 of verdict). A line allocates nothing; a source allocates only
// the jail's state while it is judged (about 3 allocations). Matches can be
// written as they are found (WriteJSON, WriteText), so the report needs no
// memory per match.
package guard

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/sipwall/sipwall/internal/guard/events"
	"github.com/sipwall/sipwall/internal/guard/follow"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

// Input is one log to scan.
type Input struct {
	Name    string    // shown in the report
	R       io.Reader // the log
	ModTime time.Time // gives the year to stamps without one, and a time to lines without a stamp
}

// Options configure a scan.
type Options struct {
	Jail     jail.Config
	MaxLine  int            // follow.DefaultMaxLine if <= 0
	Location *time.Location // zone of stamps without one (time.Local if nil)
	// KeepMatches lists every matched line in Report.Matches (they are
	// always counted). WriteJSON and WriteText write them as they are found
	// instead.
	KeepMatches bool
	// MaxCandidates bounds how many rejected lines are listed (all are
	// counted); 0 means 1000.
	MaxCandidates int
}

// Match is one line attributed to an address.
type Match struct {
	File      string     `json:"file"`
	Line      int        `json:"line"`
	Event     string     `json:"event"`
	Addr      netip.Addr `json:"addr"`
	Port      uint16     `json:"port,omitempty"`
	Transport string     `json:"transport,omitempty"`
	Time      time.Time  `json:"time,omitzero"` // absent when the line has no timestamp
}

// Candidate is a line that looks like a security failure but is not
// attributed: ambiguous, malformed, or in a format not recognized.
type Candidate struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Event  string `json:"event,omitempty"`
	Reason string `json:"reason"`
}

// Verdicts of an address.
const (
	VerdictBan     = "ban"     // the thresholds were reached: it would have been banned
	VerdictWatch   = "watch"   // failures below the thresholds
	VerdictIgnored = "ignored" // never banned (loopback, own address, never-ban list)
)

// Address is the verdict on one address.
type Address struct {
	Addr      netip.Addr     `json:"addr"`
	Failures  int            `json:"failures"`
	Events    map[string]int `json:"events"`
	Verdict   string         `json:"verdict"`
	Reason    string         `json:"reason,omitempty"`
	FirstSeen time.Time      `json:"first_seen,omitzero"`
	LastSeen  time.Time      `json:"last_seen,omitzero"`
	Bans      int            `json:"bans,omitempty"`
	BannedAt  time.Time      `json:"banned_at,omitzero"` // first ban
	BanUntil  time.Time      `json:"ban_until,omitzero"` // end of the last ban
	BanTime   string         `json:"ban_time,omitempty"` // duration of the last ban
}

// FileSummary counts one input.
type FileSummary struct {
	File               string `json:"file"`
	Lines              int    `json:"lines"`
	Matched            int    `json:"matched"`
	UnmatchedCandidate int    `json:"unmatched_candidate"`
	Overlong           int64  `json:"overlong"`
}

// Thresholds echoes the jail configuration used.
type Thresholds struct {
	FindTime   string `json:"findtime"`
	MaxRetry   int    `json:"maxretry"`
	BanTime    string `json:"bantime"`
	BanFactor  int    `json:"bantime_factor"`
	MaxBanTime string `json:"max_bantime"`
}

// Report is the result of a scan.
type Report struct {
	Thresholds         Thresholds     `json:"thresholds"`
	Files              []FileSummary  `json:"files"`
	Lines              int            `json:"lines"`
	Matched            int            `json:"matched"`
	UnmatchedCandidate int            `json:"unmatched_candidate"`
	Overlong           int64          `json:"overlong"`
	Events             map[string]int `json:"events"` // matches per event kind
	Matches            []Match        `json:"matches"`
	Candidates         []Candidate    `json:"candidates"`
	Addresses          []Address      `json:"addresses"`
}

// Scan reads the inputs and reports matches and verdicts. Failures are fed
// to the jail in time order across all inputs. Errors name the input.
func Scan(ctx context.Context, inputs []Input, opts Options) (*Report, error) {
	s, err := newScanner(opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Matches: []Match{}}
	var onMatch func(*Match) error
	if opts.KeepMatches {
		onMatch = func(m *Match) error {
			rep.Matches = append(rep.Matches, *m)
			return nil
		}
	}
	if err := s.read(ctx, inputs, onMatch); err != nil {
		return nil, err
	}
	rep.Thresholds = s.thresholds()
	rep.Files = s.files
	rep.Lines, rep.Matched, rep.UnmatchedCandidate, rep.Overlong = s.lines, s.matched, s.unmatched, s.overlong
	rep.Events = map[string]int{}
	for k, n := range s.kinds {
		if n > 0 {
			rep.Events[events.Kind(k).String()] = n
		}
	}
	rep.Candidates = s.candidates
	s.judge()
	rep.Addresses = make([]Address, 0, len(s.verdicts))
	for i := range s.verdicts {
		a := s.address(&s.verdicts[i])
		a.Events = map[string]int{}
		for k, n := range s.eventsOf(&s.verdicts[i]) {
			if n > 0 {
				a.Events[events.Kind(k).String()] = int(n)
			}
		}
		rep.Addresses = append(rep.Addresses, a)
	}
	return rep, nil
}

// noTime marks a failure or a moment without a time.
const noTime = math.MinInt64

// failure is one attributed line, compact.
type failure struct {
	at   int64  // Unix nanoseconds, noTime when unknown
	addr uint32 // index of the source
	kind events.Kind
}

// verdict is the judgement on one source, compact; address() expands it.
type verdict struct {
	addr      uint32 // index of the source
	failures  uint32
	bans      uint32
	rank      uint8 // 0 ban, 1 watch, 2 ignored
	zeroUntil bool  // the last ban started at an unknown time: until counts from the zero Time
	first     int64 // Unix nanoseconds or noTime
	last      int64
	bannedAt  int64
	until     int64 // Unix nanoseconds, or nanoseconds after the zero Time (zeroUntil)
	banTime   time.Duration
}

var verdictNames = [...]string{VerdictBan, VerdictWatch, VerdictIgnored}

// scanner holds the state of one scan.
type scanner struct {
	jail    *jail.Jail
	loc     *time.Location
	maxLine int
	maxCand int

	sources sourceTable
	fails   []failure
	sorted  bool // fails are in time order

	files                     []FileSummary
	lines, matched, unmatched int
	overlong                  int64
	kinds                     []int // matches per kind
	candidates                []Candidate
	verdicts                  []verdict
	runs                      []uint32 // after judge: source i's failures are at[runs[i]:runs[i+1]]
	at                        []int64
	kindOf                    []events.Kind
	scratch                   []uint32 // counts per kind of one source
	match                     Match
	matchErr                  error
}

func newScanner(opts Options) (*scanner, error) {
	j, err := jail.New(opts.Jail)
	if err != nil {
		return nil, err
	}
	s := &scanner{jail: j, loc: opts.Location, maxLine: opts.MaxLine, maxCand: opts.MaxCandidates, sorted: true}
	if s.loc == nil {
		s.loc = time.Local
	}
	if s.maxCand <= 0 {
		s.maxCand = 1000
	}
	n := len(events.Kinds()) + 1
	s.kinds = make([]int, n)
	s.scratch = make([]uint32, n)
	s.candidates = []Candidate{}
	return s, nil
}

func (s *scanner) thresholds() Thresholds {
	cfg := s.jail.Config()
	return Thresholds{
		FindTime: cfg.FindTime.String(), MaxRetry: cfg.MaxRetry, BanTime: cfg.BanTime.String(),
		BanFactor: cfg.BanFactor, MaxBanTime: cfg.MaxBanTime.String(),
	}
}

// read reads the inputs, calling onMatch (if not nil) for every match as it
// is found. The *Match is reused: onMatch must copy what it keeps.
func (s *scanner) read(ctx context.Context, inputs []Input, onMatch func(*Match) error) error {
	for _, in := range inputs {
		if err := ctx.Err(); err != nil {
			return err
		}
		fs := FileSummary{File: in.Name}
		f := fileScan{s: s, in: &in, fs: &fs, onMatch: onMatch}
		lines, overlong, err := follow.ReadAll(follow.WithContext(ctx, in.R), s.maxLine, f.line)
		if err != nil {
			return fmt.Errorf("guard: reading %s: %w", in.Name, err)
		}
		if s.matchErr != nil {
			return s.matchErr
		}
		fs.Lines, fs.Overlong = lines, overlong
		s.files = append(s.files, fs)
		s.lines += fs.Lines
		s.matched += fs.Matched
		s.unmatched += fs.UnmatchedCandidate
		s.overlong += overlong
	}
	return nil
}

// fileScan is the state of reading one input.
type fileScan struct {
	s       *scanner
	in      *Input
	fs      *FileSummary
	last    time.Time
	onMatch func(*Match) error
}

// line handles one line. It does not allocate (but to grow the failures
// and, for a new source, the source table).
func (f *fileScan) line(n int, line []byte) {
	s := f.s
	ev, r, why := events.ClassifyIn(line, s.loc)
	switch r {
	case events.Rejected:
		f.fs.UnmatchedCandidate++
		if len(s.candidates) < s.maxCand {
			s.candidates = append(s.candidates, Candidate{File: f.in.Name, Line: n, Event: ev.Kind.String(), Reason: why})
		}
		return
	case events.NoMatch:
		return
	}
	f.fs.Matched++
	s.kinds[ev.Kind]++
	at := fixTime(ev, f.in.ModTime, s.loc)
	stamped := !at.IsZero()
	if stamped {
		f.last = at
	} else if !f.last.IsZero() {
		at = f.last
	} else {
		at = f.in.ModTime
	}
	if f.onMatch != nil && s.matchErr == nil {
		m := &s.match
		*m = Match{File: f.in.Name, Line: n, Event: ev.Kind.String(), Addr: ev.Addr, Port: ev.Port, Transport: ev.Transport}
		if stamped {
			m.Time = at
		}
		s.matchErr = f.onMatch(m)
	}
	ns := int64(noTime)
	if !at.IsZero() {
		ns = at.UnixNano()
	}
	if k := len(s.fails); k > 0 && s.fails[k-1].at > ns {
		s.sorted = false
	}
	s.fails = append(s.fails, failure{at: ns, addr: s.sources.index(ev.Addr), kind: ev.Kind})
}

// judge feeds each source's failures, in time order, to the jail and
// records the verdicts, sorted for the report: bans first, then by
// failures, then by address. A source's verdict depends on its own
// failures only, so the sources are judged one after the other and the
// jail holds one source at a time.
func (s *scanner) judge() {
	if !s.sorted {
		slices.SortStableFunc(s.fails, func(a, b failure) int { return cmp.Compare(a.at, b.at) })
	}
	// Group by source, keeping time order (a counting sort).
	n := s.sources.len()
	runs := make([]uint32, n+1)
	for _, f := range s.fails {
		runs[f.addr+1]++
	}
	for i := 1; i <= n; i++ {
		runs[i] += runs[i-1]
	}
	s.at = make([]int64, len(s.fails))
	s.kindOf = make([]events.Kind, len(s.fails))
	for _, f := range s.fails {
		i := runs[f.addr]
		runs[f.addr]++
		s.at[i], s.kindOf[i] = f.at, f.kind
	}
	copy(runs[1:], runs[:n])
	runs[0] = 0
	s.runs = runs
	s.fails = nil

	cfg := s.jail.Config()
	forget := max(cfg.FindTime, cfg.RecidiveWindow, cfg.MaxBanTime) + time.Second
	s.verdicts = make([]verdict, n)
	for i := range s.verdicts {
		v := &s.verdicts[i]
		*v = verdict{addr: uint32(i), rank: 1, first: noTime, last: noTime, bannedAt: noTime}
		addr := s.sources.addr(uint32(i))
		var when time.Time
		for _, at := range s.at[runs[i]:runs[i+1]] {
			when = time.Time{}
			if at != noTime {
				when = time.Unix(0, at).In(s.loc)
				if v.first == noTime {
					v.first = at
				}
				v.last = at
			}
			v.failures++
			d := s.jail.Fail(when, addr)
			switch d.Action {
			case jail.Ignored:
				v.rank = 2
			case jail.Ban:
				v.rank = 0
				v.bans++
				if v.bannedAt == noTime && at != noTime {
					v.bannedAt = at
				}
				v.banTime = d.Duration
				if at != noTime {
					v.until, v.zeroUntil = d.Until.UnixNano(), false
				} else {
					v.until, v.zeroUntil = int64(d.Until.Sub(time.Time{})), true
				}
			}
		}
		// Forget the source: nothing of it is left to remember after this.
		s.jail.Prune(when.Add(forget))
	}
	slices.SortFunc(s.verdicts, func(x, y verdict) int {
		if c := cmp.Compare(x.rank, y.rank); c != 0 {
			return c
		}
		if c := cmp.Compare(y.failures, x.failures); c != 0 {
			return c
		}
		return s.sources.compare(x.addr, y.addr)
	})
}

// address expands a verdict (without its Events).
func (s *scanner) address(v *verdict) Address {
	a := Address{Addr: s.sources.addr(v.addr), Failures: int(v.failures), Verdict: verdictNames[v.rank], Bans: int(v.bans)}
	if v.rank == 2 {
		a.Reason, _ = s.jail.Exempt(a.Addr)
	}
	a.FirstSeen, a.LastSeen, a.BannedAt = s.time(v.first), s.time(v.last), s.time(v.bannedAt)
	if v.bans > 0 {
		if v.zeroUntil {
			a.BanUntil = time.Time{}.Add(time.Duration(v.until))
		} else {
			a.BanUntil = time.Unix(0, v.until).In(s.loc)
		}
		a.BanTime = v.banTime.String()
	}
	return a
}

func (s *scanner) time(ns int64) time.Time {
	if ns == noTime {
		return time.Time{}
	}
	return time.Unix(0, ns).In(s.loc)
}

// eventsOf returns the failures per kind of the verdict's source, in a
// buffer reused by the next call.
func (s *scanner) eventsOf(v *verdict) []uint32 {
	clear(s.scratch)
	for _, k := range s.kindOf[s.runs[v.addr]:s.runs[v.addr+1]] {
		s.scratch[k]++
	}
	return s.scratch
}

// fixTime gives a year to stamps without one: the year of the file's
// modification, or the year before when that would put the line more than a
// day after the file was last written (a December line in a January file).
func fixTime(ev events.Event, mod time.Time, loc *time.Location) time.Time {
	if !ev.NoYear || ev.Time.IsZero() {
		return ev.Time
	}
	ref := mod
	if ref.IsZero() {
		ref = time.Now()
	}
	ref = ref.In(loc)
	t := ev.Time
	fixed := time.Date(ref.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	if fixed.After(ref.Add(24 * time.Hour)) {
		fixed = fixed.AddDate(-1, 0, 0)
	}
	return fixed
}
