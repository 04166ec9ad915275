package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	sw "github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard"
	"github.com/sipwall/sipwall/internal/guard/ami"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/inspect"
	"github.com/sipwall/sipwall/internal/guard/jail"
	"github.com/sipwall/sipwall/internal/guard/live"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/policy"
)

// prefixList is a repeatable flag of comma-separated prefixes or addresses.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(f); err == nil {
			*p = append(*p, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return fmt.Errorf("%q is neither an address nor a prefix", f)
		}
		a = a.Unmap()
		*p = append(*p, netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, v)
	return nil
}

func runGuard(e *env) int {
	fs := newFlags(e, "guard", "[-c FILE] [--log FILE|journal:UNIT]... [--ami HOST:PORT --ami-user USER] [--metrics 127.0.0.1:9765] [jail flags]\n       sipwall guard --scan-log FILE... [--json] [--matches] [jail flags]\nLive mode takes its settings from the policy's guard: section; a flag given on the command line overrides it.")
	scanLog := fs.Bool("scan-log", false, "analyse the log FILEs offline: matches and per-address verdicts; the firewall is not touched")
	asJSON := fs.Bool("json", false, "print the report as JSON (see docs/guard.md)")
	listMatches := fs.Bool("matches", false, "list every matched line (always in --json)")
	findTime := fs.Duration("findtime", jail.DefaultFindTime, "window in which failures are counted (policy: guard.findtime)")
	maxRetry := fs.Int("maxretry", jail.DefaultMaxRetry, "failures within findtime that ban an address (policy: guard.maxretry)")
	banTime := fs.Duration("bantime", jail.DefaultBanTime, "duration of a first ban (policy: guard.bantime)")
	banFactor := fs.Int("bantime-factor", jail.DefaultBanFactor, "each repeat ban within a week lasts this many times longer (1: no escalation; policy: guard.bantime_factor)")
	maxBanTime := fs.Duration("max-bantime", jail.DefaultMaxBanTime, "longest ban (policy: guard.max_bantime)")
	maxLine := fs.Int("max-line", 0, "longest line read, in bytes; longer lines are skipped and counted (default 65536)")
	ignoreSelf := fs.Bool("ignore-self", true, "never ban this host's own addresses (turn off when the logs come from another host; policy: guard.ignore_self)")
	var neverBan prefixList
	fs.Var(&neverBan, "never-ban", "addresses or prefixes never banned (comma-separated, repeatable; replaces guard.never_ban); loopback and this host's addresses never are")
	// Live mode.
	policyFile := fs.String("c", policy.DefaultPath, "policy `file`: live mode's settings (its guard: section), the trusted networks, the inspector's hostnames and signatures")
	stateDir := stateDirFlag(fs)
	backendName := fs.String("backend", "", "backend the ruleset was applied with (default: read from the state directory)")
	var logs stringList
	fs.Var(&logs, "log", "log `file` to follow, or journal:UNIT for the systemd journal (repeatable; replaces guard.logs): Asterisk's security, messages or full channel, or syslog")
	amiAddr := fs.String("ami", "", "Asterisk manager `host:port` to read security events from (policy: guard.ami.address)")
	amiUser := fs.String("ami-user", "", "manager account, which needs read = security (policy: guard.ami.user)")
	amiSecret := fs.String("ami-secret", "", "manager secret (prefer $SIPWALL_AMI_SECRET or a secret file: a flag shows in ps)")
	amiSecretFile := fs.String("ami-secret-file", "", "`file` holding the manager secret (policy: guard.ami.secret_file)")
	noInspect := fs.Bool("no-inspect", false, "nftables backend: do not read SIP packets from nflog (the knock and scanner signatures are then not checked at all; policy: guard.inspect: false)")
	metricsAddr := fs.String("metrics", "127.0.0.1:9765", "`address` for /metrics and /healthz (\"off\" disables; policy: guard.metrics)")
	poll := fs.Duration("poll", 10*time.Millisecond, "how often log files are checked for new lines")
	resolveEvery := fs.Duration("resolve-every", 5*time.Minute, "how often the policy's trusted.hosts names are resolved again (policy: guard.resolve_every)")
	saveEvery := fs.Duration("save-every", 5*time.Minute, "how often the lists are saved to the state directory (policy: guard.save_every)")
	verbose := fs.Bool("v", false, "log every decision, including ignored failures")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// Values given on the command line are checked before the policy is read.
	var bad []string
	if set["maxretry"] && *maxRetry < 1 {
		bad = append(bad, "--maxretry must be at least 1")
	}
	if set["findtime"] && *findTime <= 0 {
		bad = append(bad, "--findtime must be positive")
	}
	if set["bantime"] && *banTime <= 0 {
		bad = append(bad, "--bantime must be positive")
	}
	if set["bantime-factor"] && *banFactor < 1 {
		bad = append(bad, "--bantime-factor must be at least 1")
	}
	if set["max-bantime"] && *maxBanTime <= 0 {
		bad = append(bad, "--max-bantime must be positive")
	}
	if set["poll"] && *poll <= 0 {
		bad = append(bad, "--poll must be positive")
	}
	if set["resolve-every"] && *resolveEvery <= 0 {
		bad = append(bad, "--resolve-every must be positive")
	}
	if set["save-every"] && *saveEvery <= 0 {
		bad = append(bad, "--save-every must be positive")
	}
	if set["metrics"] && *metricsAddr != "off" {
		if _, _, err := net.SplitHostPort(*metricsAddr); err != nil {
			bad = append(bad, fmt.Sprintf("--metrics: %q is not host:port or off", *metricsAddr))
		}
	}
	for _, l := range logs {
		if unit, ok := strings.CutPrefix(l, journalPrefix); ok && !validUnit(unit) {
			bad = append(bad, fmt.Sprintf("--log %s: %q is not a systemd unit name", l, unit))
		}
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintf(e.stderr, "sipwall guard: %s\n", b)
		}
		return exitUsage
	}

	// The policy's guard section, then the flags given explicitly on top.
	var p *policy.Policy
	if !*scanLog || set["c"] {
		var ok bool
		if p, ok = loadPolicy(e, *policyFile); !ok {
			return exitUsage
		}
	} else {
		p = policy.Default()
	}
	s := settingsFromPolicy(p)
	if set["findtime"] {
		s.jail.FindTime = *findTime
	}
	if set["maxretry"] {
		s.jail.MaxRetry = *maxRetry
	}
	if set["bantime"] {
		s.jail.BanTime = *banTime
	}
	if set["bantime-factor"] {
		s.jail.BanFactor = *banFactor
	}
	if set["max-bantime"] {
		s.jail.MaxBanTime = *maxBanTime
	}
	if set["never-ban"] {
		s.jail.NeverBan = neverBan
	}
	if set["ignore-self"] {
		s.ignoreSelf = *ignoreSelf
	}
	if set["log"] {
		s.logs = logs
	}
	if set["ami"] {
		s.amiAddr = *amiAddr
	}
	if set["ami-user"] {
		s.amiUser = *amiUser
	}
	if set["ami-secret-file"] {
		s.amiSecretFile, s.amiSecretFileKey = *amiSecretFile, "--ami-secret-file"
	}
	if set["no-inspect"] {
		s.inspect = !*noInspect
	}
	if set["metrics"] {
		s.metrics = *metricsAddr
	}
	if set["resolve-every"] {
		s.resolveEvery = *resolveEvery
	}
	if set["save-every"] {
		s.saveEvery = *saveEvery
	}
	if s.jail.MaxBanTime < s.jail.BanTime {
		fmt.Fprintf(e.stderr, "sipwall guard: the longest ban (%s) is shorter than a first ban (%s): check --max-bantime, --bantime and the policy's guard section\n", s.jail.MaxBanTime, s.jail.BanTime)
		return exitUsage
	}
	jailCfg := s.jail
	if s.ignoreSelf {
		jailCfg.Self = ownAddresses()
	}
	if !*scanLog {
		if fs.NArg() > 0 {
			fmt.Fprintf(e.stderr, "sipwall guard: unexpected argument %q (follow files with --log FILE; analyse them with --scan-log)\n", fs.Arg(0))
			return exitUsage
		}
		if s.amiAddr != "" {
			switch {
			case s.amiUser == "":
				fmt.Fprintln(e.stderr, "sipwall guard: --ami needs --ami-user (guard.ami.user in the policy), and a secret")
				return exitUsage
			case set["ami-secret"]:
				s.amiSecret = *amiSecret
			case os.Getenv("SIPWALL_AMI_SECRET") != "":
				s.amiSecret = os.Getenv("SIPWALL_AMI_SECRET")
			case s.amiSecretFile != "":
				secret, err := readSecret(s.amiSecretFile)
				if err != nil {
					fmt.Fprintf(e.stderr, "sipwall guard: %s%s: the AMI secret: %v\n", s.amiSecretFileWhere(p), s.amiSecretFileKey, err)
					return exitUsage
				}
				s.amiSecret = secret
			default:
				fmt.Fprintf(e.stderr, "sipwall guard: no secret for the AMI account %s at %s: set guard.ami.secret_file in the policy, $SIPWALL_AMI_SECRET or --ami-secret-file\n", s.amiUser, s.amiAddr)
				return exitUsage
			}
		}
		return guardLive(e, p, liveOptions{
			stateDir: *stateDir, backend: *backendName,
			logs: s.logs, amiAddr: s.amiAddr, amiUser: s.amiUser, amiSecret: s.amiSecret,
			inspect: s.inspect, metrics: s.metrics, poll: *poll,
			resolveEvery: s.resolveEvery, saveEvery: s.saveEvery, verbose: *verbose,
			jail: jailCfg,
		})
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "sipwall guard: --scan-log needs at least one log FILE")
		fs.Usage()
		return exitUsage
	}

	var inputs []guard.Input
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
			return exitUsage
		}
		if fi.IsDir() {
			fmt.Fprintf(e.stderr, "sipwall guard: %s is a directory, not a log file\n", name)
			return exitUsage
		}
		inputs = append(inputs, guard.Input{Name: name, R: f, ModTime: fi.ModTime()})
	}

	opts := guard.Options{
		MaxLine: *maxLine,
		Jail:    jailCfg,
	}
	return scanLogs(e, inputs, opts, *asJSON, *listMatches)
}

// ownAddresses returns this host's interface addresses, never banned.
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

// liveOptions are the flags of live mode.
type liveOptions struct {
	stateDir, backend           string
	logs                        []string
	amiAddr, amiUser, amiSecret string
	inspect                     bool
	metrics                     string
	poll                        time.Duration
	resolveEvery, saveEvery     time.Duration
	verbose                     bool
	jail                        jail.Config
}

// listStore adapts the lists package to what guard needs.
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

// guardLive runs live mode once its settings are known (tests replace it).
var guardLive = runGuardLive

// runGuardLive runs guard as a daemon until it is stopped (SIGTERM, ^C).
func runGuardLive(e *env, p *policy.Policy, o liveOptions) int {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	backend := o.backend
	store, err := lists.Open(e.ctx, o.stateDir, sw.Host{})
	switch {
	case err == nil:
		if backend == "" {
			backend = string(store.Name())
		} else if backend != string(store.Name()) {
			fmt.Fprintf(e.stderr, "sipwall guard: --backend %s, but %s says the %s backend is applied\n", backend, o.stateDir, store.Name())
			return exitUsage
		}
	case backend == "":
		fmt.Fprintf(e.stderr, "sipwall guard: %v (state directory %s); or give --backend when the ruleset was loaded another way\n", err, o.stateDir)
		return exitFailure
	}
	name, err := sw.Parse(backend)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitUsage
	}
	// Guard writes through the applied backend's set store.
	be, err := sw.Open(name, sw.Host{})
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitUsage
	}
	var sets []sw.Set
	if store != nil {
		sets = store.Sets
	} else if sets, err = be.ReadSets(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitFailure
	}

	// Never banned: loopback and own addresses (the jail), trusted networks
	// and the explicit list; trusted host names are resolved by the daemon.
	jc := o.jail
	for _, n := range append(append([]policy.Prefix(nil), p.Trusted.All...), p.Trusted.SIP...) {
		jc.NeverBan = append(jc.NeverBan, n.Prefix)
	}
	cfg := live.Config{
		Logs: o.logs, StateDir: o.stateDir, Poll: o.poll,
		Jail: jc, ScannerBanFor: p.SIP.Scanners.BanFor.Duration,
		ResolveEvery: o.resolveEvery, SaveEvery: o.saveEvery,
		Metrics: live.NewMetrics(), Health: &live.Health{}, Log: log,
		Banner: ban.Store{Sets: be.Store(sets)},
		ForgetFlows: func(ctx context.Context, a netip.Addr) error {
			_, err := be.ForgetFlows(ctx, []netip.Prefix{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())})
			return err
		},
	}
	for _, h := range p.Trusted.Hosts {
		cfg.Hosts = append(cfg.Hosts, h.Name)
	}
	cfg.Resolve = func(ctx context.Context, name string) ([]netip.Addr, error) {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
		var out []netip.Addr
		for _, a := range addrs {
			if a = a.Unmap(); a.Is4() || p.IPv6 {
				out = append(out, a)
			}
		}
		return out, err
	}
	if store != nil {
		cfg.Lists = listStore{store}
		cfg.SavePath = lists.DefaultFile(o.stateDir)
	}
	if o.amiAddr != "" {
		cfg.AMI = []ami.Config{{Addr: o.amiAddr, Username: o.amiUser, Secret: o.amiSecret}}
	}

	// iptables matches the knock and the signatures in the kernel
	// (xt_string); with nftables guard inspects SIP too.
	if compile.Backend(name) == compile.NFTables && o.inspect && p.SIP.Mode != "" {
		ic := inspect.FromPolicy(p)
		cfg.Inspect = &ic
		cfg.Group = compile.InspectGroup
	}

	g, err := live.New(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitUsage
	}
	if o.metrics != "" && o.metrics != "off" {
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall guard: metrics: %v\n", err)
			return exitFailure
		}
		srv := &http.Server{Handler: live.Handler(cfg.Metrics, cfg.Health), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	log.Info("sipwall guard starting", "backend", backend, "mode", p.SIP.Mode, "logs", strings.Join(o.logs, ","), "ami", o.amiAddr, "inspector", cfg.Inspect != nil,
		"maxretry", jc.MaxRetry, "findtime", jc.FindTime, "bantime", jc.BanTime, "bantime_factor", jc.BanFactor, "max_bantime", jc.MaxBanTime,
		"scanner_ban_for", banForText(cfg.ScannerBanFor))
	if err := g.Run(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitFailure
	}
	log.Info("sipwall guard stopped")
	return exitOK
}

// journalPrefix marks a guard.logs entry (or --log value) that names a
// systemd unit whose journal is followed: journal:asterisk.service.
const journalPrefix = live.JournalPrefix

// validUnit reports whether u looks like a systemd unit name (no spaces, no
// option-like leading dash).
func validUnit(u string) bool {
	if u == "" || strings.HasPrefix(u, "-") || len(u) > 256 {
		return false
	}
	for _, c := range u {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// guardSettings are live mode's settings: the policy's guard section, with
// the flags given on the command line on top.
type guardSettings struct {
	logs                        []string
	amiAddr, amiUser, amiSecret string
	// amiSecretFile is the file holding the AMI secret, and the key or flag
	// that named it (for error messages).
	amiSecretFile, amiSecretFileKey string
	jail                            jail.Config // without Self
	ignoreSelf, inspect             bool
	metrics                         string
	resolveEvery, saveEvery         time.Duration
}

// settingsFromPolicy reads the policy's guard section. A relative
// secret_file is relative to the policy file's directory.
func settingsFromPolicy(p *policy.Policy) guardSettings {
	g := p.Guard
	s := guardSettings{
		logs:    append([]string(nil), g.Logs...),
		amiAddr: g.AMI.Address, amiUser: g.AMI.User,
		amiSecretFile: g.AMI.SecretFile, amiSecretFileKey: "guard.ami.secret_file",
		jail: jail.Config{
			FindTime: g.FindTime.Duration, MaxRetry: g.MaxRetry, BanTime: g.BanTime.Duration,
			BanFactor: g.BanTimeFactor, MaxBanTime: g.MaxBanTime.Duration,
		},
		ignoreSelf: g.IgnoreSelf, inspect: g.Inspect, metrics: g.Metrics,
		resolveEvery: g.ResolveEvery.Duration, saveEvery: g.SaveEvery.Duration,
	}
	for _, n := range g.NeverBan {
		s.jail.NeverBan = append(s.jail.NeverBan, n.Prefix)
	}
	if s.amiSecretFile != "" && !filepath.IsAbs(s.amiSecretFile) && p.Source != "" {
		s.amiSecretFile = filepath.Join(filepath.Dir(p.Source), s.amiSecretFile)
	}
	return s
}

// amiSecretFileWhere is "FILE:LINE: " of the policy's secret_file key when
// the secret file came from the policy.
func (s guardSettings) amiSecretFileWhere(p *policy.Policy) string {
	if s.amiSecretFileKey != "guard.ami.secret_file" || p.Source == "" {
		return ""
	}
	if n := p.Line("guard.ami.secret_file"); n > 0 {
		return fmt.Sprintf("%s:%d: ", p.Source, n)
	}
	return p.Source + ": "
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
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

func banForText(d time.Duration) string {
	if d == 0 {
		return "forever"
	}
	return d.String()
}
