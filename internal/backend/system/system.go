// Package system runs the firewall tools (iptables-restore, ipset, nft,
// conntrack) on a host, inside a network namespace when one is named, and
// types their failures once (backend.ToolError). The backends run every
// tool through it.
package system

import (
	"bytes"
	"context"
	"io"
	"os/exec"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns"
)

// Exec runs tools as child processes, inside network namespace NS when set
// (through `ip netns exec`), as the tests and the lab do.
type Exec struct {
	NS string
}

// Run runs argv with stdin and returns its standard output. A failure is a
// *backend.ToolError (a missing tool a *backend.MissingToolError).
func (x Exec) Run(ctx context.Context, stdin io.Reader, argv ...string) (string, error) {
	tool, args := argv[0], argv[1:]
	if x.NS != "" {
		argv = append([]string{"ip", "netns", "exec", x.NS}, argv...)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return "", &backend.MissingToolError{Tool: argv[0]}
	}
	if _, err := exec.LookPath(tool); err != nil {
		return "", &backend.MissingToolError{Tool: tool}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), backend.NewToolError(tool, args, errb.String(), err)
	}
	return out.String(), nil
}

// Do runs fn in the host's network namespace ("" the current one), on a
// thread of its own: a netlink socket opened in fn belongs to it.
func Do(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	return netns.Do(ns, fn)
}
