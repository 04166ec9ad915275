package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// FileSystem is how the audit reads files. Paths are operating-system paths
// (the configured roots joined with what is read below them).
type FileSystem interface {
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	// ReadLink returns the target of a symbolic link (for /proc/PID/fd/N).
	ReadLink(name string) (string, error)
	// Glob returns the names matching pattern, sorted, as filepath.Glob does.
	Glob(pattern string) ([]string, error)
}

// OSFiles is the FileSystem of the operating system.
type OSFiles struct{}

// ReadFile implements FileSystem.
func (OSFiles) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ReadDir implements FileSystem.
func (OSFiles) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// ReadLink implements FileSystem.
func (OSFiles) ReadLink(name string) (string, error) { return os.Readlink(name) }

// Glob implements FileSystem.
func (OSFiles) Glob(pattern string) ([]string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	sort.Strings(m)
	return m, nil
}

// maxInputSize bounds what is read of one configuration file; a larger file
// is reported rather than read.
const maxInputSize = 16 << 20

// readConfig reads a configuration file. It returns ok=false when the file
// does not exist (missing is a normal state for most inputs) and records a
// finding when the file exists but cannot be read.
func (a *auditor) readConfig(path string) (data []byte, ok bool) {
	data, err := a.readInput(path)
	return data, err == nil
}

// readInput is readConfig returning the error: one that satisfies
// isNotExist for a missing file, any other has been reported as a finding.
func (a *auditor) readInput(path string) ([]byte, error) {
	data, err := a.files.ReadFile(path)
	switch {
	case err == nil && len(data) > maxInputSize:
		err = fmt.Errorf("file is larger than %d bytes", maxInputSize)
		a.unreadable(path, err)
		return nil, err
	case err == nil:
		return data, nil
	case isNotExist(err):
		return nil, err
	default:
		a.unreadable(path, err)
		return nil, err
	}
}

func isNotExist(err error) bool {
	// ENOTDIR: a component of the path is a file, so the file is not there.
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
