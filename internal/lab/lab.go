// Package lab builds a small Internet in network namespaces and shows
// sipwall doing its job: a real SIP server (Kamailio) with an SSH port, real
// attack tools (sipvicious, sipsak, nmap, hping3) and real phones (sipp),
// run against sipwall's ruleset, against the article's own ruleset and with
// no firewall at all, side by side. Every namespace hangs off a bridge in a
// namespace of its own; nothing touches the host's network namespace or its
// firewall, and everything is removed when the lab ends, fails or is
// interrupted.
package lab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/policy"
)

// DefaultPolicy is the lab's policy, used when no policy file is given.
//
//go:embed policy.yaml
var DefaultPolicy []byte

//go:embed kamailio.cfg
var kamailioCfg string

//go:embed register-call.xml
var registerCallXML string

//go:embed register-flood.xml
var registerFloodXML string

// Options controls a lab run.
type Options struct {
	// Policy is the policy file; empty means DefaultPolicy.
	Policy string
	// Backend is iptables or nftables.
	Backend backend.Name
	// Sipwall is the sipwall binary that applies the rulesets.
	Sipwall string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Keep keeps the lab up after the run, until ctx ends.
	Keep bool
	// LookPath finds programs (default exec.LookPath).
	LookPath func(string) (string, error)
}

type firewall string

const (
	fwNone     firewall = "none"
	fwIPTables firewall = firewall(backend.IPTables)
	fwNFTables firewall = firewall(backend.NFTables)
	fwArticle  firewall = "article"
)

// labSeq numbers the Internets of this process, so that labs running at
// the same time in one process never share a namespace name.
var labSeq atomic.Int32

// lab is the shared part of one `sipwall lab`.
type lab struct {
	opt     Options
	dir     string
	policy  string
	banFor  time.Duration
	env     []string
	logMu   sync.Mutex
	hasSave bool
}

func (l *lab) logf(format string, a ...any) {
	if l.opt.Log == nil {
		return
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	fmt.Fprintf(l.opt.Log, format+"\n", a...)
}

// Run builds the lab, runs the traffic against sipwall's ruleset (the
// backend of opt), the article's ruleset and no firewall, in three
// separate Internets at once, and reports. The namespaces and processes are
// gone when it returns, whatever happened.
func Run(ctx context.Context, opt Options) (*Report, error) {
	start := time.Now()
	if opt.Backend != backend.IPTables && opt.Backend != backend.NFTables {
		return nil, fmt.Errorf("lab: backend %q: want iptables or nftables", opt.Backend)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: needs root (network namespaces, netfilter): run it with sudo")
	}
	if err := checkTools(opt.LookPath); err != nil {
		return nil, err
	}
	if opt.Sipwall == "" {
		return nil, errors.New("lab: no sipwall binary")
	}
	dir, err := os.MkdirTemp("", "sipwall-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(dir)
	l := &lab{opt: opt, dir: dir, policy: opt.Policy}
	if l.policy == "" {
		l.policy = filepath.Join(dir, "lab.yaml")
		if err := os.WriteFile(l.policy, DefaultPolicy, 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	} else if l.policy, err = filepath.Abs(l.policy); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	p, err := policy.LoadFile(l.policy)
	if err != nil {
		return nil, fmt.Errorf("lab: policy: %w", err)
	}
	l.banFor = p.Traps.BanFor.Duration
	l.env = labEnv(dir)
	l.hasSave = l.sipwallHas(ctx, "save") && l.sipwallHas(ctx, "restore")
	cleanStale()

	kinds := []firewall{firewall(opt.Backend), fwArticle, fwNone}
	runs := make([]*RunReport, len(kinds))
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, k := range kinds {
		wg.Go(func() {
			runs[i], errs[i] = l.runOne(ctx, k, fmt.Sprintf("%d%c", labSeq.Add(1), "sna"[i]))
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lab: interrupted; namespaces and processes removed: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Report{Backend: opt.Backend, Policy: opt.Policy, Runs: runs}
	if r.Policy == "" {
		r.Policy = "(built in)"
	}
	if opt.Backend == backend.NFTables {
		r.Notes = append(r.Notes, "nftables cannot match strings: `sipwall guard` runs in the server namespace and reads the SIP packets of unknown sources from nflog; it admits the phones by their hostname knock (their first UDP REGISTER is dropped and retransmitted) and bans the scanners by their signatures.")
	}
	r.Checks = evaluate(r, l.banFor)
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// labEnv is the environment of every program the lab runs: a PATH with the
// sbin directories, HOME in the lab's directory (sipvicious writes its
// sessions there), and nothing of the caller's SSH session.
func labEnv(dir string) []string {
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !strings.Contains(":"+path+":", ":"+d+":") {
			path += ":" + d
		}
	}
	return []string{"PATH=" + path, "HOME=" + dir, "LANG=C", "TERM=dumb"}
}

// sipwallHas reports whether the sipwall binary has a subcommand.
func (l *lab) sipwallHas(ctx context.Context, name string) bool {
	out, err := run(ctx, "", l.opt.Sipwall, "help")
	if err != nil && out == "" {
		return false
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// tmpl fills the {{.Host}} of a scenario.
func tmpl(text string) string {
	var b strings.Builder
	template.Must(template.New("").Parse(text)).Execute(&b, struct{ Host string }{hostname})
	return b.String()
}
