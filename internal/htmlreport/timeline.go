// Package htmlreport renders sipwall's reports as one self-contained HTML
// file to look at in a browser: inline CSS and SVG charts, no script, font,
// image or style sheet from anywhere else, so that it opens offline and can
// be mailed as it is.
//
// Every number the page shows that the command's --json report also has
// carries a data-json attribute naming the JSON field (totals.dropped,
// sources.3.packets): the tests compare the browser's DOM with --json by it.
package htmlreport

import (
	"fmt"
	"io"
	"time"

	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/engine"
)

// Timeline collects the verdict of every packet to the host during a
// replay (through replay.Options.Trace), to draw packets over time.
type Timeline struct {
	verdicts map[string][]engine.Verdict // by capture name, indexed by packet number
}

// none marks a packet that was not evaluated as arriving at the host.
const none engine.Verdict = 255

// NewTimeline returns an empty timeline.
func NewTimeline() *Timeline { return &Timeline{verdicts: map[string][]engine.Verdict{}} }

// Trace records one packet's verdict; it has replay.Options.Trace's
// signature.
func (t *Timeline) Trace(file string, number int, dir engine.Direction, v engine.Verdict) {
	if dir != engine.In || (v != engine.Accepted && v != engine.Dropped) {
		return
	}
	vs := t.verdicts[file]
	for len(vs) <= number {
		vs = append(vs, none)
	}
	vs[number] = v
	t.verdicts[file] = vs
}

// Series is packets to the host over time, by verdict, in equal buckets.
type Series struct {
	Start    time.Time
	Step     time.Duration
	Accepted []int
	Dropped  []int
}

// Series reads the captures' timestamps again (open opens a capture by the
// name the replay gave it) and counts the recorded verdicts in buckets
// between first and last.
func (t *Timeline) Series(open func(name string) (io.ReadCloser, error), first, last time.Time, buckets int) (*Series, error) {
	span := last.Sub(first)
	step := span / time.Duration(buckets)
	if step <= 0 {
		step = time.Second
	}
	s := &Series{Start: first, Step: step, Accepted: make([]int, buckets), Dropped: make([]int, buckets)}
	for name, vs := range t.verdicts {
		f, err := open(name)
		if err != nil {
			return nil, err
		}
		rd, err := capture.NewReader(name, f)
		if err != nil {
			f.Close()
			return nil, err
		}
		for {
			rec, err := rd.Next()
			if err != nil {
				break // the replay reported any error already
			}
			if rec.Number >= len(vs) || vs[rec.Number] == none {
				continue
			}
			i := int(rec.Timestamp.Sub(first) / step)
			if i < 0 {
				i = 0
			}
			if i >= buckets {
				i = buckets - 1
			}
			if vs[rec.Number] == engine.Accepted {
				s.Accepted[i]++
			} else {
				s.Dropped[i]++
			}
		}
		f.Close()
	}
	return s, nil
}

// Total is the number of packets in the series.
func (s *Series) Total() (accepted, dropped int) {
	for i := range s.Accepted {
		accepted += s.Accepted[i]
		dropped += s.Dropped[i]
	}
	return
}

func (s *Series) String() string {
	a, d := s.Total()
	return fmt.Sprintf("%d buckets of %v: %d accepted, %d dropped", len(s.Accepted), s.Step, a, d)
}
