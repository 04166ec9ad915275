// Package audit finds the weaknesses of a PBX host that a firewall ruleset
// alone does not fix: sshd settings, Asterisk modules and channel drivers
// that open ports or admit guests, the manager and HTTP interfaces, listening
// sockets the policy does not name, kernel limits the ruleset depends on, and
// the state of sipwall's own ruleset.
//
// Every file is read through a FileSystem from paths the caller chooses, so
// the audit runs as well on a copy of another machine's /etc, /proc and /sys
// as on the live host. The package never executes a program; the state of
// the applied firewall comes in through the FirewallState interface.
package audit

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Default locations of what the audit reads on a live host.
const (
	DefaultSSHDConfig  = "/etc/ssh/sshd_config"
	DefaultAsteriskDir = "/etc/asterisk"
	DefaultProc        = "/proc"
	DefaultSys         = "/sys"
)

// Profile names an Exposure may carry.
const (
	ProfileSipwall = "sipwall"
	ProfileArticle = "article" // the article's ruleset: xt_recent lists
)

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.First && p <= r.Last }

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Exposure describes what the policy lets in from outside, as far as the
// audit needs to know it. A nil *Exposure means no policy was given: the
// checks that compare the host with the policy are skipped and an info
// finding says so.
type Exposure struct {
	// Profile is ProfileSipwall or ProfileArticle.
	Profile string
	// Backend is the firewall backend the policy compiles for ("iptables" or "nft").
	Backend string
	// IPv6 is true when the policy also filters IPv6.
	IPv6 bool
	// TCPPorts and UDPPorts are the ports the policy admits from outside
	// (ssh, sip, tls, rtp, ...).
	TCPPorts, UDPPorts []PortRange
	// TrapPorts are ports on which a connection attempt bans the source
	// (the article's DPTS chain); a service listening there is unreachable.
	TrapTCPPorts, TrapUDPPorts []PortRange
	// DefaultAccept is true when traffic no rule names is accepted (the
	// input chain's default is not drop).
	DefaultAccept bool
	// Trusted are the networks trusted for SIP (trusted.all and
	// trusted.sip) and TrustedHosts the trusted DNS names: a trunk of the
	// PBX outside them is reported.
	Trusted      []netip.Prefix
	TrustedHosts []string
	// KnockSIP is true when SIP needs a knock (hostname or user-agent
	// mode): an untrusted trunk's calls are then dropped.
	KnockSIP bool
	// ExpectedCalls is the number of concurrent calls the host should carry;
	// 0 means unknown, and the conntrack table is then checked only against
	// its current fill.
	ExpectedCalls int
}

func (e *Exposure) admits(proto string, port uint16) bool {
	ranges := e.TCPPorts
	if proto == "udp" {
		ranges = e.UDPPorts
	}
	return inRanges(ranges, port)
}

func (e *Exposure) traps(proto string, port uint16) bool {
	ranges := e.TrapTCPPorts
	if proto == "udp" {
		ranges = e.TrapUDPPorts
	}
	return inRanges(ranges, port)
}

func inRanges(rs []PortRange, p uint16) bool {
	for _, r := range rs {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// FirewallState reports the state of sipwall's ruleset in the kernel. The
// apply and lists packages provide the implementation; tests provide fakes.
type FirewallState interface {
	FirewallStatus(ctx context.Context) (FirewallStatus, error)
}

// FirewallStatus is what a FirewallState reports.
type FirewallStatus struct {
	// Applied is false when sipwall's table or chains are not in the kernel.
	Applied bool
	// Drift lists the differences between the ruleset in the kernel and the
	// one compiled from the policy, one line each; empty when they agree.
	Drift []string
	// Lists are the dynamic sets (bans, admitted sources, traps).
	Lists []ListStatus
}

// ListStatus is the state of one dynamic list.
type ListStatus struct {
	Name string
	// Entries is the number of entries in the kernel now.
	Entries int
	// Saved is the number of entries in the saved copy on disk, -1 if
	// there is no saved copy.
	Saved int
}

// Config says what to audit and where to find it.
type Config struct {
	// SSHDConfig is the sshd configuration file; relative Include paths
	// resolve against its directory, and absolute ones under /etc/ssh are
	// mapped onto it so that a copied tree is audited as a whole.
	SSHDConfig string
	// AsteriskDir holds modules.conf, manager.conf, pjsip.conf, ...
	AsteriskDir string
	// Proc is the proc file system (net/tcp, PID/fd, sys/net/...).
	Proc string
	// Sys is the sys file system (module/xt_recent/parameters).
	Sys string
	// Exposure is what the policy admits; nil when no policy was given.
	Exposure *Exposure
	// PolicyFile names the policy Exposure comes from, for the findings.
	// Set without an Exposure, it means a policy was given but could not
	// be compared with the host.
	PolicyFile string
	// Firewall reports the applied ruleset; nil skips that check.
	Firewall FirewallState
	// Files reads the files; nil means the operating system's.
	Files FileSystem
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.SSHDConfig == "" {
		out.SSHDConfig = DefaultSSHDConfig
	}
	if out.AsteriskDir == "" {
		out.AsteriskDir = DefaultAsteriskDir
	}
	if out.Proc == "" {
		out.Proc = DefaultProc
	}
	if out.Sys == "" {
		out.Sys = DefaultSys
	}
	if out.Files == nil {
		out.Files = OSFiles{}
	}
	return out
}

// Audit runs every check and returns the report. Problems reading or parsing
// an input become findings of their own (check "input.*" or "*.syntax");
// Audit returns an error only when ctx is cancelled.
func Audit(ctx context.Context, cfg Config) (*Report, error) {
	c := cfg.withDefaults()
	a := &auditor{cfg: c, files: c.Files}
	steps := []func(context.Context){
		a.checkSSHD,
		a.checkAsterisk,
		a.checkSockets,
		a.checkKernel,
		a.checkFirewall,
	}
	switch {
	case c.Exposure == nil && c.PolicyFile != "":
		a.add(Finding{
			Severity: Info,
			Check:    "policy.not_compared",
			File:     c.PolicyFile,
			Found:    "the policy was not compared with the host",
			Why:      "comparing the listening sockets, IPv6 filtering and kernel limits with the policy is not available in this build; those checks were skipped",
			Fix:      "check by hand that every listener below is admitted by the policy or bound to 127.0.0.1",
		})
	case c.Exposure == nil:
		a.add(Finding{
			Severity: Info,
			Check:    "policy.not_given",
			Found:    "no policy was given",
			Why:      "the listening sockets, IPv6 filtering and kernel limits are compared with what the policy admits",
			Fix:      "run 'sipwall audit -c POLICY' to include those checks",
		})
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		step(ctx)
	}
	return newReport(a.findings), nil
}

// auditor collects findings while the checks run.
type auditor struct {
	cfg      Config
	files    FileSystem
	findings []Finding
}

func (a *auditor) add(f Finding) { a.findings = append(a.findings, f) }

// unreadable records that an input could not be read.
func (a *auditor) unreadable(path string, err error) {
	a.add(Finding{
		Severity: Medium,
		Check:    "input.unreadable",
		File:     path,
		Found:    fmt.Sprintf("cannot read %s: %v", path, err),
		Why:      "what this file configures was not audited, so a weakness in it would go unreported",
		Fix:      "make the file readable by the user running the audit (run as root), or point the audit at a readable copy",
	})
}

// procPath and sysPath join a path below the configured roots.
func (a *auditor) procPath(parts ...string) string {
	return filepath.Join(append([]string{a.cfg.Proc}, parts...)...)
}

func (a *auditor) sysPath(parts ...string) string {
	return filepath.Join(append([]string{a.cfg.Sys}, parts...)...)
}

func (a *auditor) astPath(name string) string { return filepath.Join(a.cfg.AsteriskDir, name) }

// joinQuoted renders names as `a`, `b` and `c`.
func joinQuoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}
