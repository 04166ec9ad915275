package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sipwall/sipwall/internal/htmlreport"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/replay"
)

// timelineBuckets is how many bars the packets-over-time chart has.
const timelineBuckets = 120

// writeReplayHTML renders the replay report to path; the chart's timestamps
// are read again from the captures, found by the base names the replay used.
func writeReplayHTML(path string, rep *replay.Report, tl *htmlreport.Timeline, captures []string) error {
	byName := map[string]string{}
	for _, c := range captures {
		byName[filepath.Base(c)] = c
	}
	open := func(name string) (io.ReadCloser, error) { return os.Open(byName[name]) }
	series, err := tl.Series(open, rep.First, rep.Last, timelineBuckets)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := htmlreport.Replay(&b, rep, series); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes())
}

// writeStatsHTML renders the live counters to path.
func writeStatsHTML(path string, st *lists.Stats) error {
	var b bytes.Buffer
	if err := htmlreport.Stats(&b, st, time.Now()); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes())
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so that a reader never sees half a report.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
