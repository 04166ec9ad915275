package backend

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a caller decides on. Backends wrap them (errors.Is finds them).
var (
	// ErrNotFound: the object (table, set, element, flow) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExist: the object exists already, or overlaps one that does.
	ErrExist = errors.New("already exists")
	// ErrFull: a set is full.
	ErrFull = errors.New("set is full")
	// ErrUnsupported: the kernel or the tool lacks a feature.
	ErrUnsupported = errors.New("not supported")
	// ErrNoSet: the applied ruleset has no set for an entry.
	ErrNoSet = errors.New("no such set in the applied ruleset")
	// ErrNotLoaded: sipwall's ruleset is not in the kernel.
	ErrNotLoaded = errors.New("sipwall's ruleset is not loaded")
)

// IsNotFound reports whether err says an object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsExist reports whether err says an object exists already.
func IsExist(err error) bool { return errors.Is(err, ErrExist) }

// ToolError is a firewall tool's failure: which tool, with which
// arguments, and what it said on standard error. Kind is the sentinel
// the message means (ErrNotFound…), or nil.
type ToolError struct {
	Tool   string
	Args   []string
	Stderr string
	Kind   error
	Err    error // the process's error (exit status)
}

func (e *ToolError) Error() string {
	msg := e.Stderr
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: %s", e.Tool, msg)
}

// Is makes errors.Is(err, ErrNotFound) true for a tool error of that kind.
func (e *ToolError) Is(target error) bool { return e.Kind != nil && e.Kind == target }

// Unwrap returns the process's error.
func (e *ToolError) Unwrap() error { return e.Err }

// toolMessages are what the tools say, by the sentinel it means.
var toolMessages = []struct {
	tool, text string
	kind       error
}{
	{"nft", "No such file or directory", ErrNotFound},
	{"nft", "File exists", ErrExist},
	{"nft", "Operation not supported", ErrUnsupported},
	{"nft", "No space left", ErrFull},
	{"nft", "Argument list too long", ErrFull},
	{"ipset", "does not exist", ErrNotFound},
	{"ipset", "is full", ErrFull},
	{"ipset", "without comment support", ErrUnsupported},
	{"ipset", "not supported", ErrUnsupported},
	{"ipset", "Kernel error received", ErrUnsupported},
	{"ipset", "already added", ErrExist},
	{"conntrack", "0 flow entries", ErrNotFound},
}

// NewToolError types a tool's failure: it recognises the tool's messages
// once, here, so that callers ask errors.Is instead of reading text.
func NewToolError(tool string, args []string, stderr string, err error) *ToolError {
	e := &ToolError{Tool: tool, Args: args, Stderr: strings.TrimSpace(stderr), Err: err}
	for _, m := range toolMessages {
		if m.tool == tool && strings.Contains(e.Stderr, m.text) {
			e.Kind = m.kind
			break
		}
	}
	return e
}

// MissingToolError says which tool is absent and which package provides it.
type MissingToolError struct{ Tool string }

var packages = map[string]string{
	"iptables-restore": "iptables", "ip6tables-restore": "iptables", "iptables-save": "iptables",
	"ip6tables-save": "iptables", "iptables": "iptables", "ip6tables": "iptables",
	"nft": "nftables", "ipset": "ipset", "conntrack": "conntrack", "ip": "iproute2",
}

func (e *MissingToolError) Error() string {
	if p, ok := packages[e.Tool]; ok {
		return fmt.Sprintf("%s is not installed (Debian package %s)", e.Tool, p)
	}
	return fmt.Sprintf("%s is not installed", e.Tool)
}
