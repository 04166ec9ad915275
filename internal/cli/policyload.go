package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
)

// loadPolicy loads the policy file, printing every problem on stderr.
func loadPolicy(e *env, path string) (*policy.Policy, bool) {
	p, err := pure(e.ctx, func() (*policy.Policy, error) { return policy.LoadFile(path) })
	if e.ctx.Err() != nil {
		return nil, false // Main says it was interrupted
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "sipwall: %s\n", line)
		}
		return nil, false
	}
	return p, true
}

// lintGate prints the policy's lint errors and reports whether the command
// may go on: not when there are errors, unless forced.
func lintGate(e *env, p *policy.Policy, force bool, refusal string) bool {
	findings, err := pure(e.ctx, func() ([]policy.Finding, error) { return p.Lint(hostFacts()), nil })
	if err != nil {
		return false // interrupted
	}
	for _, f := range findings {
		if f.Severity == policy.SevError {
			fmt.Fprintf(e.stderr, "sipwall: %s\n", f)
		}
	}
	if policy.HasErrors(findings) && !force {
		fmt.Fprintln(e.stderr, refusal)
		return false
	}
	return true
}

// hostFacts reads what lint needs to know about this host.
func hostFacts() policy.HostFacts {
	var h policy.HostFacts
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err == nil {
		h.IPv6 = strings.TrimSpace(string(b)) == "0"
	}
	conn := os.Getenv("SSH_CONNECTION")
	if f := strings.Fields(conn); len(f) == 4 && sessionIsLocal(f[2]) {
		h.SSHServerPort = sshServerPort(conn)
		h.SSHClient, _ = netip.ParseAddr(f[0])
	}
	return h
}

// sessionIsLocal reports whether the SSH session's server address belongs to
// this network namespace: a session into another namespace (sipwall run with
// `ip netns exec`) does not cross this firewall. When the addresses cannot be
// read, the session is assumed local.
func sessionIsLocal(server string) bool {
	srv, err := netip.ParseAddr(server)
	if err != nil {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == srv.Unmap() {
			return true
		}
	}
	return false
}

// sshServerPort extracts the server port from SSH_CONNECTION
// ("client_ip client_port server_ip server_port").
func sshServerPort(conn string) int {
	f := strings.Fields(conn)
	if len(f) != 4 {
		return 0
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return 0
	}
	return n
}

// resolveHosts resolves the policy's trusted DNS names.
func resolveHosts(ctx context.Context, p *policy.Policy) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	for i, h := range p.Trusted.Hosts {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(cctx, "ip", h.Name)
		cancel()
		if err != nil || len(addrs) == 0 {
			key := fmt.Sprintf("trusted.hosts[%d].name", i)
			return nil, &policy.Error{File: p.Source, Line: p.Line(key), Key: key, Msg: fmt.Sprintf("cannot resolve %q: %v", h.Name, err)}
		}
		for _, a := range addrs {
			if a.Unmap().Is6() && !p.IPv6 {
				continue
			}
			out[h.Name] = append(out[h.Name], a.Unmap())
		}
	}
	return out, nil
}

// compilePolicy compiles p for a backend and profile.
func compilePolicy(ctx context.Context, p *policy.Policy, name backend.Name, profile string) (*ir.Ruleset, error) {
	switch profile {
	case "article":
		if name != backend.IPTables {
			return nil, fmt.Errorf("the article profile is an iptables ruleset (xt_recent, xt_string): use --backend iptables")
		}
		return pure(ctx, func() (*ir.Ruleset, error) { return compile.Article(p) })
	case "sipwall", "":
		resolved, err := resolveHosts(ctx, p)
		if err != nil {
			return nil, err
		}
		return pure(ctx, func() (*ir.Ruleset, error) {
			return compile.Compile(p, compile.Options{Backend: name, Resolved: resolved})
		})
	}
	return nil, fmt.Errorf("unknown profile %q (sipwall or article)", profile)
}
