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
	// always counted).
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
	j, err := jail.New(opts.Jail)
	if err != nil {
		return nil, err
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	maxCand := opts.MaxCandidates
	if maxCand <= 0 {
		maxCand = 1000
	}
	cfg := j.Config()
	rep := &Report{
		Thresholds: Thresholds{
			FindTime: cfg.FindTime.String(), MaxRetry: cfg.MaxRetry, BanTime: cfg.BanTime.String(),
			BanFactor: cfg.BanFactor, MaxBanTime: cfg.MaxBanTime.String(),
		},
		Events: map[string]int{}, Matches: []Match{}, Candidates: []Candidate{}, Addresses: []Address{},
	}
	// One failure, compact: a million of them take 24 MB.
	type failure struct {
		at   int64  // Unix nanoseconds, noTime when unknown
		seq  uint32 // input order, to keep equal times in order
		addr uint32 // index into addrs
		kind events.Kind
	}
	const noTime = math.MinInt64
	var addrs []netip.Addr
	addrIndex := map[netip.Addr]uint32{}
	var fails []failure
	for _, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fs := FileSummary{File: in.Name}
		var last time.Time
		lines, overlong, err := follow.ReadAll(in.R, opts.MaxLine, func(n int, line []byte) {
			ev, r, why := events.ClassifyIn(line, loc)
			switch r {
			case events.Rejected:
				fs.UnmatchedCandidate++
				if len(rep.Candidates) < maxCand {
					rep.Candidates = append(rep.Candidates, Candidate{File: in.Name, Line: n, Event: ev.Kind.String(), Reason: why})
				}
				return
			case events.NoMatch:
				return
			}
			fs.Matched++
			rep.Events[ev.Kind.String()]++
			at := fixTime(ev, in.ModTime, loc)
			m := Match{File: in.Name, Line: n, Event: ev.Kind.String(), Addr: ev.Addr, Port: ev.Port, Transport: ev.Transport}
			if !at.IsZero() {
				last = at
				m.Time = at
			} else if !last.IsZero() {
				at = last
			} else {
				at = in.ModTime
			}
			if opts.KeepMatches {
				rep.Matches = append(rep.Matches, m)
			}
			idx, ok := addrIndex[ev.Addr]
			if !ok {
				idx = uint32(len(addrs))
				addrs = append(addrs, ev.Addr)
				addrIndex[ev.Addr] = idx
			}
			ns := int64(noTime)
			if !at.IsZero() {
				ns = at.UnixNano()
			}
			fails = append(fails, failure{at: ns, seq: uint32(len(fails)), addr: idx, kind: ev.Kind})
		})
		if err != nil {
			return nil, fmt.Errorf("guard: reading %s: %w", in.Name, err)
		}
		fs.Lines, fs.Overlong = lines, overlong
		rep.Files = append(rep.Files, fs)
		rep.Lines += fs.Lines
		rep.Matched += fs.Matched
		rep.UnmatchedCandidate += fs.UnmatchedCandidate
		rep.Overlong += overlong
	}

	byTime := func(a, b failure) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	}
	if !slices.IsSortedFunc(fails, byTime) {
		slices.SortFunc(fails, byTime)
	}
	byAddr := make([]*Address, len(addrs))
	for _, f := range fails {
		a := byAddr[f.addr]
		if a == nil {
			a = &Address{Addr: addrs[f.addr], Events: map[string]int{}, Verdict: VerdictWatch}
			byAddr[f.addr] = a
		}
		var when time.Time
		if f.at != noTime {
			when = time.Unix(0, f.at).In(loc)
		}
		a.Failures++
		a.Events[f.kind.String()]++
		if !when.IsZero() {
			if a.FirstSeen.IsZero() {
				a.FirstSeen = when
			}
			a.LastSeen = when
		}
		d := j.Fail(when, a.Addr)
		switch d.Action {
		case jail.Ignored:
			a.Verdict, a.Reason = VerdictIgnored, d.Reason
		case jail.Ban:
			a.Verdict = VerdictBan
			a.Bans++
			if a.BannedAt.IsZero() {
				a.BannedAt = when
			}
			a.BanUntil = d.Until
			a.BanTime = d.Duration.String()
		}
	}
	for _, a := range byAddr {
		rep.Addresses = append(rep.Addresses, *a)
	}
	rank := map[string]int{VerdictBan: 0, VerdictWatch: 1, VerdictIgnored: 2}
	slices.SortFunc(rep.Addresses, func(x, y Address) int {
		if c := cmp.Compare(rank[x.Verdict], rank[y.Verdict]); c != 0 {
			return c
		}
		if c := cmp.Compare(y.Failures, x.Failures); c != 0 {
			return c
		}
		return x.Addr.Compare(y.Addr)
	})
	return rep, nil
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
