package guard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ami"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/inspect"
	"github.com/sipwall/sipwall/internal/guard/live"
	"github.com/sipwall/sipwall/internal/lists"
)

// ErrNoSource is returned by Run when none of the configured sources can
// be read (every log file missing or unreadable, no AMI account, no
// inspector): guard would watch nothing.
var ErrNoSource = errors.New("no usable source")

// kernelWriter is what guard changes in the kernel: the lists it bans
// into and the conntrack flows of a banned source.
type kernelWriter struct {
	banner ban.Banner
	forget func(ctx context.Context, a netip.Addr) error
	// store and maxTimeout are the set store itself and its longest
	// timeout, for the fleet's lists (CrowdSec, feeds).
	store      backend.SetStore
	maxTimeout time.Duration
}

// openKernel returns guard's kernel writer: the applied backend's set store
// over sets (read from the kernel when the state does not record them), and
// its conntrack flow deleter. It is the one place where guard learns how its
// bans reach the kernel.
var openKernel = func(ctx context.Context, name backend.Name, sets []backend.Set) (kernelWriter, error) {
	be, err := backend.Open(name, backend.Host{})
	if err != nil {
		return kernelWriter{}, err
	}
	if sets == nil {
		if sets, err = be.ReadSets(ctx); err != nil {
			return kernelWriter{}, err
		}
	}
	store := be.Store(sets)
	return kernelWriter{
		banner: ban.Store{Sets: store}, store: store, maxTimeout: be.MaxTimeout(),
		forget: func(ctx context.Context, a netip.Addr) error {
			a = a.Unmap()
			_, err := be.ForgetFlows(ctx, []netip.Prefix{netip.PrefixFrom(a, a.BitLen())})
			return err
		},
	}, nil
}

// listStore adapts the lists package to what live needs.
type listStore struct{ s *lists.Store }

func (l listStore) Save(ctx context.Context, path string) error {
	_, err := l.s.Save(ctx, path)
	return err
}

func (l listStore) Sizes(ctx context.Context) (map[string]int, error) {
	st, err := l.s.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return st.Lists, nil
}

// CheckLog reports why the log file at path cannot be read now, "" when it
// can. missing is true when the file does not exist (yet).
func CheckLog(path string) (problem string, missing bool) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist", true
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "cannot be read: " + err.Error(), false
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return "is a directory, not a log file", false
	}
	return "", false
}

// checkSources checks the configured log files. A missing file is still
// followed (it is picked up when Asterisk creates it); an unreadable one
// is not. It returns the logs to follow and the problems, by input name.
func (d *Daemon) checkSources() (follow []string, problems []SourceStatus, usable int) {
	for _, l := range d.Settings.Logs {
		if strings.HasPrefix(l, live.JournalPrefix) {
			follow = append(follow, l)
			usable++
			continue
		}
		problem, missing := CheckLog(l)
		if problem == "" {
			follow = append(follow, l)
			usable++
			continue
		}
		if missing {
			follow = append(follow, l)
			problem += " (followed once it appears)"
		} else {
			problem += " (not followed)"
		}
		problems = append(problems, SourceStatus{Input: "log " + l, Problem: problem})
	}
	if d.Settings.AMI != nil {
		usable++
	}
	if d.Settings.Fleet != nil {
		usable++ // CrowdSec or feeds: guard has work even without a log
	}
	return follow, problems, usable
}

// Run runs the daemon until ctx ends (SIGTERM, ^C) or an input fails for
// good. Log files that are missing or unreadable at start are warned about
// (in the log, /healthz and guard's status file) and the other sources
// keep running; when no source is usable at all, Run returns ErrNoSource.
func (d *Daemon) Run(ctx context.Context) error {
	s := d.Settings
	log := d.log
	store, err := lists.Open(ctx, s.StateDir, backend.Host{})
	switch {
	case err == nil:
		if s.Backend == "" {
			s.Backend = store.Name()
		} else if s.Backend != store.Name() {
			return fmt.Errorf("--backend %s, but %s says the %s backend is applied", s.Backend, s.StateDir, store.Name())
		}
	case s.Backend == "":
		return fmt.Errorf("%w (state directory %s); or give --backend when the ruleset was loaded another way", err, s.StateDir)
	}

	follow, problems, usable := d.checkSources()
	inspector := s.Inspect && s.Backend == backend.NFTables
	if inspector {
		usable++
	}
	health := &live.Health{}
	for _, pr := range problems {
		log.Warn("configured log is not usable", "input", pr.Input, "problem", pr.Problem)
		health.Set(pr.Input, pr.Problem)
	}
	if usable == 0 {
		var why []string
		for _, pr := range problems {
			why = append(why, pr.Input+" "+pr.Problem)
		}
		if len(why) == 0 {
			why = append(why, "no log file, no AMI account, and no inspector on the "+string(s.Backend)+" backend")
		}
		d.writeStatus(s, problems, false)
		return fmt.Errorf("%w: %s; configure guard.logs (Asterisk's security or messages log, or journal:UNIT), guard.ami or run the nftables backend's inspector", ErrNoSource, strings.Join(why, "; "))
	}

	var sets []backend.Set
	if store != nil {
		sets = store.Sets
	}
	kw, err := openKernel(ctx, s.Backend, sets)
	if err != nil {
		return err
	}
	p := d.policy
	cfg := live.Config{
		Logs: follow, StateDir: s.StateDir, Poll: s.Poll, MaxLine: s.MaxLine,
		Jail: s.Jail, ScannerBanFor: s.ScannerBanFor,
		Hosts: s.Hosts, ResolveEvery: s.ResolveEvery, SaveEvery: s.SaveEvery,
		Metrics: live.NewMetrics(), Health: health, Log: log,
		Banner: kw.banner, ForgetFlows: kw.forget,
	}
	cfg.Resolve = func(ctx context.Context, name string) ([]netip.Addr, error) {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
		var out []netip.Addr
		for _, a := range addrs {
			if a = a.Unmap(); a.Is4() || s.IPv6 {
				out = append(out, a)
			}
		}
		return out, err
	}
	if store != nil {
		cfg.Lists = listStore{store}
		cfg.SavePath = lists.DefaultFile(s.StateDir)
		cfg.Allowed = func(ctx context.Context, a netip.Addr) bool {
			es, err := store.List(ctx, compile.SetAllowed)
			if err != nil {
				log.Warn("reading the allowed list", "err", err)
				return false
			}
			for _, e := range es {
				if e.Prefix.Contains(a) {
					return true
				}
			}
			return false
		}
	}
	if s.AMI != nil {
		cfg.AMI = []ami.Config{*s.AMI}
	}
	if s.AdmitRegistered {
		cfg.Admit = &live.Admit{}
	}
	if inspector {
		// iptables matches the knock and the signatures in the kernel
		// (xt_string); on nftables guard's inspector does.
		ic := inspect.FromPolicy(p)
		cfg.Inspect = &ic
		cfg.Group = compile.InspectGroup
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	var fleetWG sync.WaitGroup
	defer fleetWG.Wait()
	defer stopFleet()
	if s.Fleet != nil {
		if kw.store == nil {
			return fmt.Errorf("crowdsec and feeds need the %s backend's set store", s.Backend)
		}
		cfg.Fleet = true
		d.fleet, cfg.OnBan = startFleet(fleetCtx, s.Fleet, kw.store, kw.maxTimeout, neverFromOutside(s.Jail.NeverBan), cfg.Metrics.Registry, log, &fleetWG)
		fleetWG.Add(1)
		go func() {
			defer fleetWG.Done()
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-fleetCtx.Done():
					return
				case <-t.C:
					d.writeStatus(s, problems, true)
				}
			}
		}()
	}
	g, err := live.New(cfg)
	if err != nil {
		return err
	}
	if s.Metrics != "" && s.Metrics != "off" {
		ln, err := net.Listen("tcp", s.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		srv := &http.Server{Handler: live.Handler(cfg.Metrics, cfg.Health), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	amiAddr := ""
	if s.AMI != nil {
		amiAddr = s.AMI.Addr
	}
	jc := s.Jail
	log.Info("sipwall guard starting", "backend", s.Backend, "mode", p.SIP.Mode, "logs", strings.Join(follow, ","), "ami", amiAddr, "inspector", cfg.Inspect != nil,
		"maxretry", jc.MaxRetry, "findtime", jc.FindTime, "bantime", jc.BanTime, "bantime_factor", jc.BanFactor, "max_bantime", jc.MaxBanTime,
		"scanner_ban_for", banForText(cfg.ScannerBanFor))
	d.writeStatus(s, problems, true)
	err = g.Run(ctx)
	d.writeStatus(s, problems, false)
	if err != nil {
		return err
	}
	log.Info("sipwall guard stopped")
	return nil
}

// writeStatus records guard's state in the state directory; a failure is
// logged, never fatal.
func (d *Daemon) writeStatus(s Settings, problems []SourceStatus, running bool) {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	if d.started.IsZero() || !running {
		d.started = time.Now().UTC()
	}
	st := Status{PID: os.Getpid(), Backend: string(s.Backend), Logs: s.Logs, Problems: problems, Running: running, At: d.started, Fleet: d.fleet.status()}
	if s.AMI != nil {
		st.AMI = s.AMI.Addr
	}
	if err := WriteStatus(s.StateDir, st); err != nil {
		d.log.Warn("recording guard's status", "err", err)
	}
}

func banForText(d time.Duration) string {
	if d == 0 {
		return "forever"
	}
	return d.String()
}
