// Package live is sipwall guard's daemon: it follows Asterisk's logs (files
// or the systemd journal) and the manager interface (AMI) for security
// failures, runs them through the jail, and puts the addresses it bans
// into the kernel's banned list; on the nftables backend it also reads the
// SIP packets the ruleset hands to nflog and puts their sources into the
// admitted or scanners list as the inspector decides. It re-resolves the
// policy's trusted host names into the allowed list, saves the lists
// periodically and exports metrics.
//
// Every input runs in a goroutine of its own; decisions go through one
// mutex-protected jail, and a ban is written to the kernel before the next
// event is looked at, so the time from a log line to the ban is a poll
// interval plus one netlink round trip.
package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ami"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/events"
	"github.com/sipwall/sipwall/internal/guard/follow"
	"github.com/sipwall/sipwall/internal/guard/inspect"
	"github.com/sipwall/sipwall/internal/guard/jail"
	"github.com/sipwall/sipwall/internal/guard/journal"
	"github.com/sipwall/sipwall/internal/guard/nflog"
	"github.com/sipwall/sipwall/internal/guard/success"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
)

// Ban reasons, as in the bans_total metric and the log.
const (
	reasonFailures         = "auth-failures"
	reasonAdmittedFailures = "admitted-auth-failures"
	reasonScanner          = "scanner"
)

// Lists is what guard needs from the list store (package lists).
type Lists interface {
	Save(ctx context.Context, path string) error
	Sizes(ctx context.Context) (map[string]int, error)
}

// Config is the daemon's configuration.
type Config struct {
	// Logs are the log files followed (Asterisk's security, messages or
	// full channels, syslog). StateDir keeps each file's position, so a
	// restart does not read lines twice or lose any; without state the
	// files are read from their end.
	Logs     []string
	StateDir string
	// Poll is how often the files are checked for new lines (default 10 ms).
	Poll time.Duration
	// MaxLine is the longest line read (follow.DefaultMaxLine if <= 0).
	MaxLine int
	// A Logs entry "journal:UNIT" follows that systemd unit's journal
	// through Journalctl (default "journalctl" from PATH), a child process
	// started again with backoff when it exits; the cursor is kept in
	// StateDir like a file's position.
	Journalctl string

	AMI []ami.Config

	// Inspect, when set, runs the SIP inspector on nflog group Group.
	Inspect *inspect.Config
	Group   uint16
	// OpenNFLog opens the nflog receiver (default nflog.Open).
	OpenNFLog func(group uint16) (*nflog.Receiver, error)

	Jail jail.Config
	// Admit, when set, admits the sources Asterisk reports registered or
	// authenticated (package success) into the admitted list.
	Admit *Admit
	// ScannerBanFor is the timeout of a scanners entry (0: the set's own,
	// the policy's sip.scanners.ban_for).
	ScannerBanFor time.Duration

	Banner ban.Banner
	// ForgetFlows, when set, deletes a banned source's conntrack flows
	// (in the background: the ban itself is already effective).
	ForgetFlows func(ctx context.Context, a netip.Addr) error

	// Allowed, when set, reports whether an address is in the allowed
	// list (sipwall allow): asked when the jail would ban it, such a
	// source is never banned, like a trusted one (the ruleset passes it
	// before every signature and limit too).
	Allowed func(ctx context.Context, a netip.Addr) bool

	// Hosts are the policy's trusted.hosts names, re-resolved every
	// ResolveEvery (default 5 min) into the allowed list for three
	// periods, and never banned.
	Hosts        []string
	ResolveEvery time.Duration
	Resolve      func(ctx context.Context, name string) ([]netip.Addr, error)

	// Lists, when set, is saved to SavePath every SaveEvery (default 5
	// min) and when guard stops, and its sizes are exported every 30 s.
	Lists     Lists
	SavePath  string
	SaveEvery time.Duration

	Metrics *Metrics
	Health  *Health
	Log     *slog.Logger

	// Fleet says guard pulls bans from elsewhere (CrowdSec, feeds): with
	// it, no log, AMI account or inspector is needed.
	Fleet bool

	// OnBan, when set, is told of every ban guard makes (after it is in
	// the kernel): the CrowdSec watcher pushes them to the fleet. It must
	// not block.
	OnBan func(Ban)
}

// Admit is how long a success admits a source.
type Admit struct {
	// For is how long a success that does not say when its registration
	// ends admits (SuccessfulAuth, PeerStatus): DefaultAdmitFor if 0.
	For time.Duration
	// Margin is added to a registration's lifetime, so that a phone that
	// refreshes late is not cut off (DefaultAdmitMargin if 0).
	Margin time.Duration
}

// Defaults of Admit.
const (
	DefaultAdmitFor    = time.Hour
	DefaultAdmitMargin = 5 * time.Minute
)

// Ban is a ban guard made, as OnBan hears of it.
type Ban struct {
	// Kind is auth (failures in the PBX's log or AMI) or scanner (a
	// signature the inspector saw).
	Kind string
	Addr netip.Addr
	For  time.Duration
	// Failures and LastEvent are the jail's count and the last failure's
	// event (auth); Signature is what the scanner carried (scanner).
	Failures  int
	LastEvent string
	Signature string
	At        time.Time
}

// Guard is a running daemon.
type Guard struct {
	cfg Config
	log *slog.Logger
	m   *Metrics
	h   *Health

	mu       sync.Mutex
	jail     *jail.Jail
	admitted map[netip.Addr]time.Time // admitted by the inspector or a success in this run
	authed   map[netip.Addr]time.Time // admitted by a success, until
	trusted  map[netip.Addr]string    // resolved trusted host addresses
	recent   *inspect.Decisions       // inspector decisions, to skip packets in flight
}

// New checks cfg and prepares a Guard.
func New(cfg Config) (*Guard, error) {
	if cfg.Banner == nil {
		return nil, errors.New("guard: no banner")
	}
	if len(cfg.Logs) == 0 && len(cfg.AMI) == 0 && cfg.Inspect == nil && !cfg.Fleet {
		return nil, errors.New("guard: nothing to watch: give log files, an AMI account, or run the inspector")
	}
	j, err := jail.New(cfg.Jail)
	if err != nil {
		return nil, err
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.ResolveEvery <= 0 {
		cfg.ResolveEvery = 5 * time.Minute
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 5 * time.Minute
	}
	if cfg.Admit != nil {
		a := *cfg.Admit
		if a.For <= 0 {
			a.For = DefaultAdmitFor
		}
		if a.Margin <= 0 {
			a.Margin = DefaultAdmitMargin
		}
		cfg.Admit = &a
	}
	if cfg.OpenNFLog == nil {
		cfg.OpenNFLog = func(g uint16) (*nflog.Receiver, error) { return nflog.Open(g, nflog.Options{}) }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Health == nil {
		cfg.Health = &Health{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Guard{
		cfg: cfg, log: cfg.Log, m: cfg.Metrics, h: cfg.Health, jail: j,
		admitted: map[netip.Addr]time.Time{}, authed: map[netip.Addr]time.Time{}, trusted: map[netip.Addr]string{}, recent: inspect.NewDecisions(),
	}, nil
}

// Run runs every input until ctx ends or one fails for good (a log file
// that cannot be followed, the nflog group taken by another process). The
// lists are saved on the way out.
func (g *Guard) Run(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				g.h.Set(name, err.Error())
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	if len(g.cfg.Hosts) > 0 && g.cfg.Resolve != nil {
		g.resolve(ctx) // before anything can be banned
		start("resolve", g.resolveLoop)
	}
	for _, path := range g.cfg.Logs {
		if unit, ok := strings.CutPrefix(path, JournalPrefix); ok {
			start("journal "+unit, func(ctx context.Context) error { return g.journal(ctx, unit) })
			continue
		}
		start("log "+path, func(ctx context.Context) error { return g.follow(ctx, path) })
	}
	for _, a := range g.cfg.AMI {
		start("ami "+a.Addr, func(ctx context.Context) error { return g.ami(ctx, a) })
	}
	if g.cfg.Inspect != nil {
		rx, err := g.cfg.OpenNFLog(g.cfg.Group)
		if err != nil {
			cancel(err)
		} else {
			start(fmt.Sprintf("nflog %d", g.cfg.Group), func(ctx context.Context) error { return g.inspect(ctx, rx) })
		}
	}
	if g.cfg.Lists != nil {
		start("lists", g.listsLoop)
	}
	start("prune", g.pruneLoop)
	g.log.Info("guard running", "logs", len(g.cfg.Logs), "ami", len(g.cfg.AMI), "inspector", g.cfg.Inspect != nil)
	<-ctx.Done()
	wg.Wait()
	if g.cfg.Lists != nil && g.cfg.SavePath != "" {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := g.cfg.Lists.Save(sctx, g.cfg.SavePath); err != nil {
			g.log.Error("saving the lists", "err", err)
		}
		scancel()
	}
	if parent.Err() != nil {
		return nil // stopped from outside
	}
	return context.Cause(ctx)
}

// follow delivers the failures of one log file.
func (g *Guard) follow(ctx context.Context, path string) error {
	opts := follow.Options{FromEnd: true, MaxLine: g.cfg.MaxLine}
	if g.cfg.StateDir != "" {
		if err := os.MkdirAll(g.cfg.StateDir, 0o750); err != nil {
			return err
		}
		opts.StatePath = follow.StatePath(g.cfg.StateDir, "guard-", path)
		opts.LegacyStatePath = filepath.Join(g.cfg.StateDir, "guard-"+strings.NewReplacer("/", "_").Replace(strings.TrimPrefix(path, "/"))+".json")
	}
	fl, err := follow.Open(path, opts)
	if err != nil {
		return err
	}
	defer func() {
		fl.SaveState()
		fl.Close()
	}()
	input := "log " + path
	// A file that does not exist yet keeps its problem (set at start)
	// until its first line arrives.
	_, statErr := os.Stat(path)
	waiting := statErr != nil
	if !waiting {
		g.h.Set(input, "")
	}
	g.m.Up.WithLabelValues(input).Set(1)
	defer g.m.Up.WithLabelValues(input).Set(0)
	err = fl.Run(ctx, g.cfg.Poll, func(line []byte) {
		read := time.Now()
		if waiting {
			waiting = false
			g.h.Set(input, "")
		}
		ev, res, _ := events.ClassifyIn(line, time.Local)
		switch res {
		case events.Matched:
			g.failure(ctx, ev, "log", read)
		case events.Rejected:
			g.m.Rejected.Inc()
		case events.NoMatch:
			if s, ok := success.Line(line); ok {
				g.succeeded(ctx, s, "log", read)
			}
		}
	})
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// JournalPrefix marks a Logs entry naming a systemd unit whose journal is
// followed: "journal:asterisk.service".
const JournalPrefix = policy.JournalPrefix

// journal delivers the failures in one unit's journal entries. journalctl
// exiting is not fatal: it is started again with backoff, and the input is
// reported down meanwhile.
func (g *Guard) journal(ctx context.Context, unit string) error {
	input := "journal " + unit
	opts := journal.Options{Unit: unit, Journalctl: g.cfg.Journalctl}
	if g.cfg.StateDir != "" {
		if err := os.MkdirAll(g.cfg.StateDir, 0o750); err != nil {
			return err
		}
		opts.StatePath = filepath.Join(g.cfg.StateDir, "guard-journal-"+strings.NewReplacer("/", "_").Replace(unit)+".json")
	}
	g.h.Set(input, "starting journalctl")
	opts.OnState = func(err error) {
		if err == nil {
			g.h.Set(input, "")
			g.m.Up.WithLabelValues(input).Set(1)
			return
		}
		g.h.Set(input, err.Error()+"; starting it again")
		g.m.Up.WithLabelValues(input).Set(0)
		g.m.Errors.WithLabelValues("journal").Inc()
		g.log.Warn("journalctl exited; starting it again", "unit", unit, "err", err)
	}
	fl, err := journal.New(opts)
	if err != nil {
		return err
	}
	defer g.m.Up.WithLabelValues(input).Set(0)
	return fl.Run(ctx, func(msg []byte) {
		read := time.Now()
		ev, res, _ := events.ClassifyIn(msg, time.Local)
		switch res {
		case events.Matched:
			g.failure(ctx, ev, "journal", read)
		case events.Rejected:
			g.m.Rejected.Inc()
		case events.NoMatch:
			if s, ok := success.Line(msg); ok {
				g.succeeded(ctx, s, "journal", read)
			}
		}
	})
}

// ami delivers the failures reported by one manager connection.
func (g *Guard) ami(ctx context.Context, cfg ami.Config) error {
	input := "ami " + cfg.Addr
	g.h.Set(input, "connecting")
	cfg.Logger = g.log
	cfg.OnState = func(up bool) {
		if up {
			g.h.Set(input, "")
			g.m.Up.WithLabelValues(input).Set(1)
		} else {
			g.h.Set(input, "disconnected, reconnecting")
			g.m.Up.WithLabelValues(input).Set(0)
		}
	}
	err := ami.Run(ctx, cfg, func(block []byte) {
		read := time.Now()
		ev, res, _ := events.ClassifyAMI(block)
		switch res {
		case events.Matched:
			g.failure(ctx, ev, "ami", read)
		case events.Rejected:
			g.m.Rejected.Inc()
		case events.NoMatch:
			if s, ok := success.AMI(block, read); ok {
				g.succeeded(ctx, s, "ami", read)
			}
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// grouped reports whether the jail decided d for a network holding a (a
// source counted per guard.ipv6_prefix) rather than for a alone. The
// banner takes addresses, so such a network is banned address by address,
// each one as it shows up.
func (g *Guard) grouped(a netip.Addr, d jail.Decision) bool {
	return d.Prefix.IsValid() && d.Prefix.Bits() < a.Unmap().BitLen()
}

// failure runs one attributed failure through the jail and bans.
func (g *Guard) failure(ctx context.Context, ev events.Event, input string, read time.Time) {
	g.m.Events.WithLabelValues(ev.Kind.String(), input).Inc()
	if !ev.Time.IsZero() && !ev.NoYear {
		if lag := read.Sub(ev.Time); lag >= 0 {
			g.m.Lag.WithLabelValues(input).Observe(lag.Seconds())
		}
	}
	g.mu.Lock()
	if name, ok := g.trusted[ev.Addr.Unmap()]; ok {
		g.mu.Unlock()
		g.log.Debug("failure from a trusted host ignored", "addr", ev.Addr, "host", name, "event", ev.Kind.String())
		return
	}
	d := g.jail.Fail(read, ev.Addr)
	_, wasAdmitted := g.admitted[ev.Addr.Unmap()]
	g.mu.Unlock()
	switch d.Action {
	case jail.Ignored:
		g.log.Debug("failure from a never-banned address", "addr", ev.Addr, "why", d.Reason, "event", ev.Kind.String())
		return
	case jail.Counted:
		return
	case jail.AlreadyBanned:
		// A network source (guard.ipv6_prefix) whose ban the banner holds
		// address by address: this address of it is banned for the rest
		// of the network's ban.
		if g.grouped(ev.Addr, d) {
			if left := d.Until.Sub(read); left >= time.Second {
				if err := g.cfg.Banner.Add(ctx, compile.SetBanned, ev.Addr, left.Truncate(time.Second)); err != nil {
					g.m.Errors.WithLabelValues("ban").Inc()
					g.log.Error("ban failed", "addr", ev.Addr, "err", err)
				}
			}
		}
		return
	}
	if g.cfg.Allowed != nil && g.cfg.Allowed(ctx, ev.Addr.Unmap()) {
		g.log.Warn("failures from a source in the allowed list: not banned", "addr", ev.Addr.String(), "failures", d.Failures, "last_event", ev.Kind.String(), "input", input)
		return
	}
	reason := reasonFailures
	if wasAdmitted {
		reason = reasonAdmittedFailures
	}
	if err := g.cfg.Banner.Add(ctx, compile.SetBanned, ev.Addr, d.Duration); err != nil {
		g.m.Errors.WithLabelValues("ban").Inc()
		g.log.Error("ban failed", "addr", ev.Addr, "err", err)
		return
	}
	g.m.BanLatency.Observe(time.Since(read).Seconds())
	g.m.Bans.WithLabelValues(reason).Inc()
	attrs := []any{"addr", ev.Addr.String(), "failures", d.Failures, "for", d.Duration.String(), "bans", d.Bans, "last_event", ev.Kind.String(), "input", input}
	if wasAdmitted {
		g.log.Warn("banned an admitted source for authentication failures (a phone with a wrong password, or a knocked attacker)", attrs...)
	} else {
		g.log.Info("banned", attrs...)
	}
	if g.cfg.OnBan != nil {
		g.cfg.OnBan(Ban{Kind: "auth", Addr: ev.Addr, For: d.Duration, Failures: d.Failures, LastEvent: ev.Kind.String(), At: read})
	}
	g.forget(ctx, ev.Addr)
}

// succeeded admits a source Asterisk reports registered or authenticated,
// for its registration's lifetime plus the margin, into the admitted list
// through the same banner as the inspector's admissions. Its failures
// counted so far are forgotten. A success does not lift a ban: a source
// guard holds banned is not admitted (the success came from packets in
// flight, or from another service than the one it failed on), and the
// ban runs its course. Trusted sources are let through by the ruleset
// already and are not listed. A success that does not extend the current
// admission by a minute or more writes nothing (pjsip reports one per
// authenticated request).
func (g *Guard) succeeded(ctx context.Context, s success.Success, input string, now time.Time) {
	if g.cfg.Admit == nil {
		return
	}
	a := s.Addr
	lifetime := g.cfg.Admit.For
	if !s.Expires.IsZero() {
		if l := s.Expires.Sub(now); l > 0 {
			lifetime = l
		}
	}
	lifetime = (lifetime + g.cfg.Admit.Margin).Truncate(time.Second)
	until := now.Add(lifetime)
	g.mu.Lock()
	if _, ok := g.trusted[a]; ok {
		g.mu.Unlock()
		return
	}
	if _, ok := g.jail.Exempt(a); ok {
		g.mu.Unlock()
		return
	}
	g.jail.Succeeded(now, a)
	bannedUntil, banned := g.jail.BannedUntil(a, now)
	prev, had := g.authed[a]
	write := !banned && (!had || until.Sub(prev) >= time.Minute)
	if write {
		g.authed[a] = until
		g.admitted[a] = now
	}
	g.mu.Unlock()
	if banned {
		g.log.Warn("a banned source registered or authenticated: not admitted, the ban stands", "addr", a.String(), "event", s.Kind.String(), "account", s.Account, "banned_until", bannedUntil.Format(time.RFC3339), "input", input)
		return
	}
	if !write {
		return
	}
	why := admitComment(s)
	add := func() error { return g.cfg.Banner.Add(ctx, compile.SetAdmitted, a, lifetime) }
	if ex, ok := g.cfg.Banner.(ban.Explainer); ok {
		add = func() error { return ex.AddWhy(ctx, compile.SetAdmitted, a, lifetime, why) }
	}
	if err := add(); err != nil {
		g.m.Errors.WithLabelValues("admit").Inc()
		g.log.Error("admit failed", "addr", a, "err", err)
		g.mu.Lock()
		delete(g.authed, a)
		g.mu.Unlock()
		return
	}
	g.m.Successes.WithLabelValues(s.Kind.String(), input).Inc()
	g.log.Info("admitted", "addr", a.String(), "by", s.Kind.String(), "account", s.Account, "for", lifetime.String(), "input", input)
}

// admitComment is the admitted entry's comment for a success: the event
// and the account, reduced to characters every backend's comment takes.
func admitComment(s success.Success) string {
	acc := []byte(s.Account)
	n := 0
	for _, c := range acc {
		if n == 32 {
			break
		}
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-+@/", c) >= 0 {
			acc[n] = c
			n++
		}
	}
	why := "authenticated (" + s.Kind.String() + ")"
	if n > 0 {
		why = "authenticated as " + string(acc[:n]) + " (" + s.Kind.String() + ")"
	}
	return why
}

func (g *Guard) forget(ctx context.Context, a netip.Addr) {
	if g.cfg.ForgetFlows == nil {
		return
	}
	go func() {
		if err := g.cfg.ForgetFlows(ctx, a); err != nil && ctx.Err() == nil {
			g.m.Errors.WithLabelValues("conntrack").Inc()
			g.log.Warn("deleting conntrack flows", "addr", a, "err", err)
		}
	}()
}

// inspect reads nflog and acts on the inspector's verdicts.
func (g *Guard) inspect(ctx context.Context, rx *nflog.Receiver) error {
	defer rx.Close()
	stop := context.AfterFunc(ctx, func() { rx.SetReadDeadline(time.Now()) })
	defer stop()
	in := inspect.New(*g.cfg.Inspect)
	input := fmt.Sprintf("nflog %d", g.cfg.Group)
	g.h.Set(input, "")
	g.m.Up.WithLabelValues(input).Set(1)
	defer g.m.Up.WithLabelValues(input).Set(0)
	var p packet.Packet
	var overruns uint64
	handle := func(np *nflog.Packet) {
		g.m.InspectorPkts.Inc()
		if err := packet.Decode(packet.LinkRaw, np.Payload, &p); err != nil {
			g.m.Verdicts.WithLabelValues("pass", "undecodable").Inc()
			return
		}
		r := in.Inspect(&p)
		g.m.Verdicts.WithLabelValues(r.Verdict.String(), r.Reason.String()).Inc()
		if r.Verdict != inspect.Pass {
			g.verdict(ctx, r)
		}
	}
	for ctx.Err() == nil {
		if err := rx.Receive(handle); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s := rx.Stats(); s.Overruns != overruns {
			g.m.Overruns.Add(float64(s.Overruns - overruns))
			g.log.Warn("nflog socket overrun: packets were lost to the inspector", "total", s.Overruns)
			overruns = s.Overruns
		}
	}
	return nil
}

// verdict puts an inspected source into the admitted or scanners list.
func (g *Guard) verdict(ctx context.Context, r inspect.Result) {
	now := time.Now()
	g.mu.Lock()
	if !g.recent.Take(r.Src, now) {
		g.mu.Unlock()
		return // packets that were in flight when the source was decided
	}
	if r.Verdict == inspect.Admit {
		g.admitted[r.Src] = now
	}
	g.mu.Unlock()
	switch r.Verdict {
	case inspect.Admit:
		if err := g.cfg.Banner.Add(ctx, compile.SetAdmitted, r.Src, 0); err != nil {
			g.m.Errors.WithLabelValues("admit").Inc()
			g.log.Error("admit failed", "addr", r.Src, "err", err)
			return
		}
		g.m.Admits.Inc()
		g.log.Info("admitted", "addr", r.Src.String(), "by", r.Reason.String(), "match", r.Match)
	case inspect.Ban:
		if why, ok := g.exempt(r.Src); ok {
			g.log.Warn("scanner signature from a never-banned address", "addr", r.Src.String(), "match", r.Match, "why", why)
			return
		}
		add := func() error { return g.cfg.Banner.Add(ctx, compile.SetScanners, r.Src, g.cfg.ScannerBanFor) }
		if ex, ok := g.cfg.Banner.(ban.Explainer); ok {
			// The entry names the signature: stats counts scanners by it.
			add = func() error {
				return ex.AddWhy(ctx, compile.SetScanners, r.Src, g.cfg.ScannerBanFor, compile.SignatureComment(r.Match))
			}
		}
		if err := add(); err != nil {
			g.m.Errors.WithLabelValues("ban").Inc()
			g.log.Error("ban failed", "addr", r.Src, "err", err)
			return
		}
		g.m.Bans.WithLabelValues(reasonScanner).Inc()
		g.log.Info("banned a SIP scanner", "addr", r.Src.String(), "signature", r.Match)
		if g.cfg.OnBan != nil {
			g.cfg.OnBan(Ban{Kind: "scanner", Addr: r.Src, For: g.cfg.ScannerBanFor, Signature: r.Match, At: now})
		}
		g.forget(ctx, r.Src)
	}
}

func (g *Guard) exempt(a netip.Addr) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if name, ok := g.trusted[a.Unmap()]; ok {
		return "trusted host " + name, true
	}
	return g.jail.Exempt(a)
}

// resolveLoop re-resolves the trusted host names.
func (g *Guard) resolveLoop(ctx context.Context) error {
	t := time.NewTicker(g.cfg.ResolveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.resolve(ctx)
		}
	}
}

// resolve puts the current addresses of the trusted hosts into the allowed
// list for three periods (an address the name no longer has expires) and
// exempts them from bans.
func (g *Guard) resolve(ctx context.Context) {
	next := map[netip.Addr]string{}
	g.mu.Lock()
	for a, n := range g.trusted {
		next[a] = n // a failed lookup keeps the last addresses
	}
	g.mu.Unlock()
	for _, name := range g.cfg.Hosts {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := g.cfg.Resolve(rctx, name)
		cancel()
		if err != nil {
			g.m.Errors.WithLabelValues("resolve").Inc()
			g.log.Warn("resolving a trusted host", "name", name, "err", err)
			continue
		}
		for a, n := range next {
			if n == name {
				delete(next, a)
			}
		}
		for _, a := range addrs {
			a = a.Unmap()
			next[a] = name
			if err := g.cfg.Banner.Add(ctx, compile.SetAllowed, a, 3*g.cfg.ResolveEvery); err != nil {
				g.m.Errors.WithLabelValues("allow").Inc()
				g.log.Warn("allowing a trusted host", "name", name, "addr", a, "err", err)
			}
		}
	}
	g.mu.Lock()
	g.trusted = next
	g.mu.Unlock()
}

// listsLoop saves the lists and exports their sizes.
func (g *Guard) listsLoop(ctx context.Context) error {
	save := time.NewTicker(g.cfg.SaveEvery)
	defer save.Stop()
	sizes := time.NewTicker(30 * time.Second)
	defer sizes.Stop()
	g.sizes(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-save.C:
			if g.cfg.SavePath == "" {
				continue
			}
			if err := g.cfg.Lists.Save(ctx, g.cfg.SavePath); err != nil {
				g.m.Errors.WithLabelValues("save").Inc()
				g.log.Error("saving the lists", "err", err)
			}
		case <-sizes.C:
			g.sizes(ctx)
		}
	}
}

func (g *Guard) sizes(ctx context.Context) {
	sz, err := g.cfg.Lists.Sizes(ctx)
	if err != nil {
		g.m.Errors.WithLabelValues("stats").Inc()
		g.log.Warn("reading list sizes", "err", err)
		return
	}
	for l, n := range sz {
		g.m.SetEntries.WithLabelValues(l).Set(float64(n))
	}
}

// pruneLoop bounds the daemon's memory: forgotten jail entries, expired
// inspector decisions.
func (g *Guard) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			// The jail's idle sources in rounds, so that a million bans
			// ending together never hold up a failure being decided.
			for {
				g.mu.Lock()
				n := g.jail.PruneAtMost(now, 4096)
				g.mu.Unlock()
				if n < 4096 || ctx.Err() != nil {
					break
				}
			}
			g.mu.Lock()
			g.recent.Prune(now)
			for a, at := range g.admitted {
				if now.Sub(at) > 7*24*time.Hour {
					delete(g.admitted, a)
				}
			}
			for a, until := range g.authed {
				if now.After(until) {
					delete(g.authed, a)
				}
			}
			g.mu.Unlock()
		}
	}
}
