package guard

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sipwall/sipwall/internal/crowdsec"
	"github.com/sipwall/sipwall/internal/feeds"
)

// StatusFile is guard's status in the state directory, read by
// `sipwall status`.
const StatusFile = "guard-status.json"

// SourceStatus is a problem with one of guard's inputs.
type SourceStatus struct {
	Input   string `json:"input"` // "log /var/log/asterisk/security"
	Problem string `json:"problem"`
}

// Status is what guard records of itself when it starts and stops.
type Status struct {
	PID     int       `json:"pid"`
	Running bool      `json:"running"`
	At      time.Time `json:"at"` // when it started, or stopped
	Backend string    `json:"backend"`
	Logs    []string  `json:"logs"`
	AMI     string    `json:"ami,omitempty"`
	// Problems are the inputs that could not be read at start.
	Problems []SourceStatus `json:"problems,omitempty"`
	// Fleet is the CrowdSec bouncer's, the watcher's and the feeds' state,
	// written every few seconds while guard runs them.
	Fleet *FleetStatus `json:"fleet,omitempty"`
}

// FleetStatus is the state of guard's fleet part.
type FleetStatus struct {
	Updated time.Time               `json:"updated"`
	LAPI    string                  `json:"lapi,omitempty"`
	Bouncer *crowdsec.Status        `json:"bouncer,omitempty"`
	Watcher *crowdsec.WatcherStatus `json:"watcher,omitempty"`
	Feeds   []feeds.State           `json:"feeds,omitempty"`
}

// WriteStatus writes st into dir (atomically).
func WriteStatus(dir string, st Status) error {
	if dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, StatusFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, StatusFile))
}

// ReadStatus reads guard's status from dir; ok is false when guard never
// ran with that state directory.
func ReadStatus(dir string) (st Status, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, err
	}
	return st, true, nil
}
