package guard

// Guard's setup, in the manner of a CoreDNS plugin's: Setup reads the
// policy's guard section (already validated, the command line's flags
// written onto it) into Settings and refuses what cannot run; Daemon.Run
// opens the state directory, the backend's lists and the inputs, and runs
// the live daemon (package live) until it is stopped.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/guard/ami"
	"github.com/sipwall/sipwall/internal/guard/jail"
	"github.com/sipwall/sipwall/internal/policy"
)

// Env is what guard's setup takes from outside the policy.
type Env struct {
	// StateDir is sipwall's state directory: the applied backend, the
	// saved lists, the positions in the logs, guard's status.
	StateDir string
	// Backend the ruleset was applied with; "" reads it from StateDir.
	Backend string
	// AMISecret, when set, is the manager secret given directly (a flag or
	// the environment); otherwise guard.ami.secret_file is read.
	AMISecret string
	// Log receives guard's log (nil: discarded). Verbose logs every
	// decision, including ignored failures.
	Log     io.Writer
	Verbose bool
}

// Settings are what the daemon runs with: the guard section read and
// resolved (secret read, relative paths made absolute, trusted networks
// and this host's addresses added to the never-banned).
type Settings struct {
	StateDir string
	Backend  backend.Name // "" until read from StateDir

	Logs []string    // files, or journal:UNIT
	AMI  *ami.Config // nil: no manager interface

	// Jail holds the thresholds and everything never banned: guard's
	// never_ban, the policy's trusted networks and, with ignore_self, this
	// host's addresses.
	Jail          jail.Config
	ScannerBanFor time.Duration
	// Hosts are the trusted host names, re-resolved every ResolveEvery.
	Hosts []string
	IPv6  bool

	// Inspect runs the SIP inspector (the nftables backend's knock and
	// scanner signatures).
	Inspect bool
	// AdmitRegistered admits the sources Asterisk reports registered or
	// authenticated (guard.admit_registered).
	AdmitRegistered bool
	Metrics         string // address:port, or "off"

	// Fleet is the CrowdSec LAPI and the blocklist feeds (nil: none).
	Fleet *Fleet

	Poll, ResolveEvery, SaveEvery time.Duration
	MaxLine                       int
	Verbose                       bool
}

// Daemon is guard set up and ready to run.
type Daemon struct {
	Settings Settings
	policy   *policy.Policy
	log      *slog.Logger

	fleet    *fleetRun
	statusMu sync.Mutex
	started  time.Time
}

// JailConfig returns the thresholds and never-banned sources of the
// policy's guard section, with this host's own addresses when ignore_self
// is on; trusted networks are not included (Setup adds them).
func JailConfig(p *policy.Policy) jail.Config {
	g := p.Guard
	c := jail.Config{
		FindTime: g.FindTime.Duration, MaxRetry: g.MaxRetry, BanTime: g.BanTime.Duration,
		BanFactor: g.BanTimeFactor, MaxBanTime: g.MaxBanTime.Duration, IPv6Prefix: g.IPv6Prefix,
	}
	for _, n := range g.NeverBan {
		c.NeverBan = append(c.NeverBan, n.Prefix)
	}
	if g.IgnoreSelf {
		c.Self = ownAddresses()
	}
	return c
}

// ownAddresses returns this host's interface addresses.
func ownAddresses() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// Setup reads p's guard section (p has been validated after the flags were
// written onto it) into a Daemon. Its errors are the configuration's: the
// AMI secret cannot be read, the backend is unknown, nothing is watched.
func Setup(p *policy.Policy, env Env) (*Daemon, error) {
	g := p.Guard
	s := Settings{
		StateDir: env.StateDir,
		Logs:     append([]string(nil), g.Logs...),
		Jail:     JailConfig(p), ScannerBanFor: p.SIP.Scanners.BanFor.Duration,
		IPv6: p.IPv6, Inspect: g.Inspect && p.SIP.Mode != "", AdmitRegistered: g.AdmitRegistered, Metrics: g.Metrics,
		Poll: g.Poll.Duration, ResolveEvery: g.ResolveEvery.Duration, SaveEvery: g.SaveEvery.Duration,
		MaxLine: g.MaxLine, Verbose: env.Verbose,
	}
	if env.Backend != "" {
		b, err := backend.Parse(env.Backend)
		if err != nil {
			return nil, err
		}
		s.Backend = b
	}
	for _, n := range append(append([]policy.Prefix(nil), p.Trusted.All...), p.Trusted.SIP...) {
		s.Jail.NeverBan = append(s.Jail.NeverBan, n.Prefix)
	}
	for _, h := range p.Trusted.Hosts {
		s.Hosts = append(s.Hosts, h.Name)
	}
	// Log files named in the policy are relative to its directory.
	for i, l := range s.Logs {
		if !strings.HasPrefix(l, policy.JournalPrefix) && !filepath.IsAbs(l) && p.Flag("guard.logs") == "" && p.Source != "" {
			s.Logs[i] = filepath.Join(filepath.Dir(p.Source), l)
		}
	}
	if g.AMI.Address != "" {
		secret, err := amiSecret(p, env)
		if err != nil {
			return nil, err
		}
		s.AMI = &ami.Config{Addr: g.AMI.Address, Username: g.AMI.User, Secret: secret}
	}
	fleet, err := FleetFromPolicy(p)
	if err != nil {
		return nil, err
	}
	s.Fleet = fleet
	if len(s.Logs) == 0 && s.AMI == nil && s.Fleet == nil && (!s.Inspect || s.Backend == backend.IPTables) {
		why := "the inspector is off (guard.inspect: false)"
		if s.Inspect {
			why = "the iptables backend has no inspector (the kernel matches the knock and signatures)"
		}
		return nil, fmt.Errorf("nothing to watch: no log file or journal (guard.logs, --log), no AMI account (guard.ami, --ami), and %s", why)
	}
	level := slog.LevelInfo
	if env.Verbose {
		level = slog.LevelDebug
	}
	w := env.Log
	if w == nil {
		w = io.Discard
	}
	return &Daemon{Settings: s, policy: p, log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))}, nil
}

// amiSecret finds the manager secret: given directly, or read from
// guard.ami.secret_file (relative to the policy's directory when the
// policy names it).
func amiSecret(p *policy.Policy, env Env) (string, error) {
	if env.AMISecret != "" {
		return env.AMISecret, nil
	}
	g := p.Guard
	const key = "guard.ami.secret_file"
	file := g.AMI.SecretFile
	if file == "" {
		return "", fmt.Errorf("no secret for the AMI account %s at %s: set %s in the policy, $SIPWALL_AMI_SECRET or --ami-secret-file", g.AMI.User, g.AMI.Address, key)
	}
	if !filepath.IsAbs(file) && p.Flag(key) == "" && p.Source != "" {
		file = filepath.Join(filepath.Dir(p.Source), file)
	}
	secret, err := readSecret(file)
	if err != nil {
		return "", fmt.Errorf("%s: the AMI secret: %w", p.Where(key), err)
	}
	return secret, nil
}

// readSecret reads a secret file: its first line, without surrounding
// blanks. An empty secret is an error.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	secret := strings.TrimSpace(line)
	if secret == "" {
		return "", errors.New(path + " is empty")
	}
	return secret, nil
}
