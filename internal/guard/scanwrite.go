package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/sipwall/sipwall/internal/guard/events"
)

// WriteJSON scans the inputs and writes the report as one JSON object, the
// fields of Report, streaming: "matches" comes first and every match is
// written as it is found, the summary follows once the inputs are read,
// and the addresses are written one at a time. Memory does not grow with
// the matches. One match, candidate or address per line.
func WriteJSON(ctx context.Context, w io.Writer, inputs []Input, opts Options) error {
	s, err := newScanner(opts)
	if err != nil {
		return err
	}
	o := output{w: w}
	o.str("{\"matches\": [")
	first := true
	err = s.read(ctx, inputs, func(m *Match) error {
		if !first {
			o.b = append(o.b, ',')
		}
		first = false
		o.b = append(o.b, '\n')
		o.matchJSON(m)
		return o.flushSome()
	})
	if err != nil {
		return err
	}
	o.str("\n],\n")
	th := s.thresholds()
	o.str("\"thresholds\": {\"findtime\": ")
	o.quote(th.FindTime)
	o.str(", \"maxretry\": ")
	o.int(int64(th.MaxRetry))
	o.str(", \"bantime\": ")
	o.quote(th.BanTime)
	o.str(", \"bantime_factor\": ")
	o.int(int64(th.BanFactor))
	o.str(", \"max_bantime\": ")
	o.quote(th.MaxBanTime)
	o.str("},\n\"files\": [")
	for i, f := range s.files {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.str("\n{\"file\": ")
		o.quote(f.File)
		o.str(", \"lines\": ")
		o.int(int64(f.Lines))
		o.str(", \"matched\": ")
		o.int(int64(f.Matched))
		o.str(", \"unmatched_candidate\": ")
		o.int(int64(f.UnmatchedCandidate))
		o.str(", \"overlong\": ")
		o.int(f.Overlong)
		o.b = append(o.b, '}')
	}
	o.str("\n],\n\"lines\": ")
	o.int(int64(s.lines))
	o.str(",\n\"matched\": ")
	o.int(int64(s.matched))
	o.str(",\n\"unmatched_candidate\": ")
	o.int(int64(s.unmatched))
	o.str(",\n\"overlong\": ")
	o.int(s.overlong)
	o.str(",\n\"events\": ")
	o.kinds(s.kinds)
	o.str(",\n\"candidates\": [")
	for i, c := range s.candidates {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.str("\n{\"file\": ")
		o.quote(c.File)
		o.str(", \"line\": ")
		o.int(int64(c.Line))
		if c.Event != "" {
			o.str(", \"event\": ")
			o.quote(c.Event)
		}
		o.str(", \"reason\": ")
		o.quote(c.Reason)
		o.b = append(o.b, '}')
	}
	o.str("\n],\n\"addresses\": [")
	s.judge()
	for i := range s.verdicts {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = append(o.b, '\n')
		v := &s.verdicts[i]
		o.addressJSON(s.address(v), s.eventsOf(v))
		if err := o.flushSome(); err != nil {
			return err
		}
	}
	o.str("\n]}\n")
	return o.flush()
}

// WriteText scans the inputs and writes the report for people: the
// thresholds, the files, the events, the matches (listMatches, written as
// they are found, before the summary), the addresses and the lines not
// attributed.
func WriteText(ctx context.Context, w io.Writer, inputs []Input, opts Options, listMatches bool) error {
	s, err := newScanner(opts)
	if err != nil {
		return err
	}
	o := output{w: w}
	th := s.thresholds()
	fmt.Fprintf(&o, "Thresholds: %d failures within %s ban for %s (repeat bans x%d, at most %s)\n\n",
		th.MaxRetry, th.FindTime, th.BanTime, th.BanFactor, th.MaxBanTime)
	var onMatch func(*Match) error
	if listMatches {
		o.str("FILE:LINE  EVENT  ADDRESS  TIME\n")
		onMatch = func(m *Match) error {
			o.str(m.File)
			o.b = append(o.b, ':')
			o.int(int64(m.Line))
			o.str("  ")
			o.str(m.Event)
			o.str("  ")
			o.b = m.Addr.AppendTo(o.b)
			o.str("  ")
			if m.Time.IsZero() {
				o.b = append(o.b, '-')
			} else {
				o.b = m.Time.AppendFormat(o.b, time.DateTime)
			}
			o.b = append(o.b, '\n')
			return o.flushSome()
		}
	}
	if err := s.read(ctx, inputs, onMatch); err != nil {
		return err
	}
	if listMatches {
		o.b = append(o.b, '\n')
	}

	tw := tabwriter.NewWriter(&o, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tLINES\tMATCHED\tUNMATCHED CANDIDATES\tOVERLONG")
	for _, f := range s.files {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", f.File, f.Lines, f.Matched, f.UnmatchedCandidate, f.Overlong)
	}
	if len(s.files) > 1 {
		fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\n", s.lines, s.matched, s.unmatched, s.overlong)
	}
	if s.matched > 0 {
		kinds := make([]events.Kind, 0, len(s.kinds))
		for k, n := range s.kinds {
			if n > 0 {
				kinds = append(kinds, events.Kind(k))
			}
		}
		slices.SortFunc(kinds, func(a, b events.Kind) int {
			if s.kinds[a] != s.kinds[b] {
				return s.kinds[b] - s.kinds[a]
			}
			return compareStrings(a.String(), b.String())
		})
		fmt.Fprintln(tw, "\nEVENT\tMATCHES")
		for _, k := range kinds {
			fmt.Fprintf(tw, "%s\t%d\n", k, s.kinds[k])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	s.judge()
	if len(s.verdicts) > 0 {
		// The address table is written row by row: column widths first.
		cols := [5]int{len("ADDRESS"), len("FAILURES"), len("VERDICT"), len("BANNED AT"), len("BANS")}
		for i := range s.verdicts {
			v := &s.verdicts[i]
			cols[0] = max(cols[0], len(s.sources.addr(v.addr).AppendTo(o.tmp[:0])))
			cols[1] = max(cols[1], len(strconv.AppendUint(o.tmp[:0], uint64(v.failures), 10)))
			if v.bannedAt != noTime {
				cols[3] = max(cols[3], len(time.DateTime))
			}
			cols[4] = max(cols[4], len(strconv.AppendUint(o.tmp[:0], uint64(v.bans), 10)))
		}
		o.str("\n")
		o.row(cols[:], "ADDRESS", "FAILURES", "VERDICT", "BANNED AT", "BANS", "DETAIL")
		for i := range s.verdicts {
			v := &s.verdicts[i]
			a := s.address(v)
			st := len(o.b)
			o.b = a.Addr.AppendTo(o.b)
			o.pad(st, cols[0])
			st = len(o.b)
			o.int(int64(a.Failures))
			o.pad(st, cols[1])
			st = len(o.b)
			o.str(a.Verdict)
			o.pad(st, cols[2])
			st = len(o.b)
			if a.BannedAt.IsZero() {
				o.b = append(o.b, '-')
			} else {
				o.b = a.BannedAt.AppendFormat(o.b, time.DateTime)
			}
			o.pad(st, cols[3])
			st = len(o.b)
			if a.Bans > 0 {
				o.int(int64(a.Bans))
			} else {
				o.b = append(o.b, '-')
			}
			o.pad(st, cols[4])
			if !a.BannedAt.IsZero() {
				o.str("last ban ")
				o.str(a.BanTime)
			} else {
				o.str(a.Reason)
			}
			o.endRow()
			if err := o.flushSome(); err != nil {
				return err
			}
		}
	}

	if len(s.candidates) > 0 {
		tw := tabwriter.NewWriter(&o, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nNOT ATTRIBUTED\tEVENT\tREASON")
		for _, c := range s.candidates {
			ev := c.Event
			if ev == "" {
				ev = "-"
			}
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\n", c.File, c.Line, ev, c.Reason)
		}
		if len(s.candidates) < s.unmatched {
			fmt.Fprintf(tw, "… and %d more\n", s.unmatched-len(s.candidates))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return o.flush()
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// output is a byte buffer written out in large pieces.
type output struct {
	w   io.Writer
	b   []byte
	tmp [64]byte
	err error
}

func (o *output) Write(p []byte) (int, error) {
	o.b = append(o.b, p...)
	return len(p), o.flushSome()
}

func (o *output) str(s string) { o.b = append(o.b, s...) }

func (o *output) int(n int64) { o.b = strconv.AppendInt(o.b, n, 10) }

// flushSome writes the buffer out once it is large.
func (o *output) flushSome() error {
	if len(o.b) >= 32<<10 {
		return o.flushBuf()
	}
	return o.err
}

func (o *output) flushBuf() error {
	if o.err == nil {
		_, o.err = o.w.Write(o.b)
	}
	o.b = o.b[:0]
	return o.err
}

func (o *output) flush() error { return o.flushBuf() }

// row writes cells padded to the widths, two spaces apart; the last cell is
// not padded.
func (o *output) row(widths []int, cells ...string) {
	for i, c := range cells {
		st := len(o.b)
		o.str(c)
		if i < len(cells)-1 {
			o.pad(st, widths[i])
		}
	}
	o.endRow()
}

// pad pads the cell written since st to width and two spaces, as
// text/tabwriter does.
func (o *output) pad(st, width int) {
	for n := utf8.RuneCount(o.b[st:]); n < width+2; n++ {
		o.b = append(o.b, ' ')
	}
}

// endRow ends a row, without trailing blanks.
func (o *output) endRow() {
	for len(o.b) > 0 && o.b[len(o.b)-1] == ' ' {
		o.b = o.b[:len(o.b)-1]
	}
	o.b = append(o.b, '\n')
}

// quote appends s as a JSON string.
func (o *output) quote(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			o.b = append(o.b, b...)
			return
		}
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, s...)
	o.b = append(o.b, '"')
}

func (o *output) time(t time.Time) {
	o.b = append(o.b, '"')
	o.b = t.AppendFormat(o.b, time.RFC3339Nano)
	o.b = append(o.b, '"')
}

func (o *output) kinds(counts []int) { kindsJSON(o, counts) }

// kindsJSON writes {"kind": count, …} for the kinds counted.
func kindsJSON[N int | uint32](o *output, counts []N) {
	o.b = append(o.b, '{')
	first := true
	for k, n := range counts {
		if n == 0 {
			continue
		}
		if !first {
			o.str(", ")
		}
		first = false
		o.quote(events.Kind(k).String())
		o.str(": ")
		o.int(int64(n))
	}
	o.b = append(o.b, '}')
}

func (o *output) matchJSON(m *Match) {
	o.str("{\"file\": ")
	o.quote(m.File)
	o.str(", \"line\": ")
	o.int(int64(m.Line))
	o.str(", \"event\": ")
	o.quote(m.Event)
	o.str(", \"addr\": \"")
	o.b = m.Addr.AppendTo(o.b)
	o.b = append(o.b, '"')
	if m.Port != 0 {
		o.str(", \"port\": ")
		o.int(int64(m.Port))
	}
	if m.Transport != "" {
		o.str(", \"transport\": ")
		o.quote(m.Transport)
	}
	if !m.Time.IsZero() {
		o.str(", \"time\": ")
		o.time(m.Time)
	}
	o.b = append(o.b, '}')
}

func (o *output) addressJSON(a Address, kinds []uint32) {
	o.str("{\"addr\": \"")
	o.b = a.Addr.AppendTo(o.b)
	o.str("\", \"failures\": ")
	o.int(int64(a.Failures))
	o.str(", \"events\": ")
	kindsJSON(o, kinds)
	o.str(", \"verdict\": ")
	o.quote(a.Verdict)
	if a.Reason != "" {
		o.str(", \"reason\": ")
		o.quote(a.Reason)
	}
	if !a.FirstSeen.IsZero() {
		o.str(", \"first_seen\": ")
		o.time(a.FirstSeen)
	}
	if !a.LastSeen.IsZero() {
		o.str(", \"last_seen\": ")
		o.time(a.LastSeen)
	}
	if a.Bans != 0 {
		o.str(", \"bans\": ")
		o.int(int64(a.Bans))
	}
	if !a.BannedAt.IsZero() {
		o.str(", \"banned_at\": ")
		o.time(a.BannedAt)
	}
	if !a.BanUntil.IsZero() {
		o.str(", \"ban_until\": ")
		o.time(a.BanUntil)
	}
	if a.BanTime != "" {
		o.str(", \"ban_time\": ")
		o.quote(a.BanTime)
	}
	o.b = append(o.b, '}')
}
