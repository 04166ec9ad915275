// Package apply loads a compiled ruleset into the kernel safely: one
// transaction per backend, only sipwall's own chains or table touched, the
// dynamic lists carried over, commit-confirm with a rollback that does not
// depend on the applying process, and the state that status, confirm and
// rollback read. Everything it does to the system goes through a Runner.
package apply

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Runner runs the firewall tools (iptables-restore, nft, ipset, conntrack).
type Runner interface {
	Run(ctx context.Context, stdin io.Reader, argv ...string) (string, error)
}

// Exec runs tools as child processes, inside network namespace NS when set
// (through `ip netns exec`), as the tests and the lab do.
type Exec struct {
	NS string
}

// Run runs argv and returns its standard output; errors carry standard error.
func (x Exec) Run(ctx context.Context, stdin io.Reader, argv ...string) (string, error) {
	if x.NS != "" {
		argv = append([]string{"ip", "netns", "exec", x.NS}, argv...)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return "", &MissingToolError{Tool: argv[0]}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), fmt.Errorf("%s: %s", argv[0], msg)
	}
	return out.String(), nil
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
