package cli

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sipwall/sipwall/internal/guard"
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
	def := policy.Default().Guard
	fs := newFlags(e, "guard", "[-c FILE] [--log FILE|journal:UNIT]... [--ami HOST:PORT --ami-user USER] [--metrics 127.0.0.1:9765] [jail flags]\n       sipwall guard --scan-log FILE... [--json] [--matches] [jail flags]\nLive mode takes its settings from the policy's guard: section; a flag given on the command line overrides it.")
	scanLog := fs.Bool("scan-log", false, "analyse the log FILEs offline: matches and per-address verdicts; the firewall is not touched")
	asJSON := fs.Bool("json", false, "print the report as JSON (see docs/guard.md)")
	listMatches := fs.Bool("matches", false, "list every matched line (always in --json)")
	// Settings of the policy's guard section: each flag given overrides its key.
	findTime := fs.Duration("findtime", def.FindTime.Duration, "window in which failures are counted (policy: guard.findtime)")
	maxRetry := fs.Int("maxretry", def.MaxRetry, "failures within findtime that ban an address (policy: guard.maxretry)")
	banTime := fs.Duration("bantime", def.BanTime.Duration, "duration of a first ban (policy: guard.bantime)")
	banFactor := fs.Int("bantime-factor", def.BanTimeFactor, "each repeat ban within a week lasts this many times longer (1: no escalation; policy: guard.bantime_factor)")
	maxBanTime := fs.Duration("max-bantime", def.MaxBanTime.Duration, "longest ban (policy: guard.max_bantime)")
	maxLine := fs.Int("max-line", def.MaxLine, "longest line read, in bytes; longer lines are skipped and counted (policy: guard.max_line)")
	ipv6Prefix := fs.Int("ipv6-prefix", def.IPv6Prefix, "count and ban IPv6 sources per network of this length (16 to 128; 64: one host's usual /64; 0: single addresses; policy: guard.ipv6_prefix)")
	ignoreSelf := fs.Bool("ignore-self", def.IgnoreSelf, "never ban this host's own addresses (turn off when the logs come from another host; policy: guard.ignore_self)")
	var neverBan prefixList
	fs.Var(&neverBan, "never-ban", "addresses or prefixes never banned (comma-separated, repeatable; replaces guard.never_ban); loopback and this host's addresses never are")
	var logs stringList
	fs.Var(&logs, "log", "log `file` to follow, or journal:UNIT for the systemd journal (repeatable; replaces guard.logs): Asterisk's security, messages or full channel, or syslog")
	amiAddr := fs.String("ami", "", "Asterisk manager `host:port` to read security events from (policy: guard.ami.address)")
	amiUser := fs.String("ami-user", "", "manager account, which needs read = security,system (policy: guard.ami.user)")
	amiSecretFile := fs.String("ami-secret-file", "", "`file` holding the manager secret (policy: guard.ami.secret_file)")
	noInspect := fs.Bool("no-inspect", !def.Inspect, "nftables backend: do not read SIP packets from nflog (the knock and scanner signatures are then not checked at all; policy: guard.inspect: false)")
	metricsAddr := fs.String("metrics", def.Metrics, "`address` for /metrics and /healthz (\"off\" disables; policy: guard.metrics)")
	poll := fs.Duration("poll", def.Poll.Duration, "how often log files are checked for new lines (policy: guard.poll)")
	resolveEvery := fs.Duration("resolve-every", def.ResolveEvery.Duration, "how often the policy's trusted.hosts names are resolved again (policy: guard.resolve_every)")
	saveEvery := fs.Duration("save-every", def.SaveEvery.Duration, "how often the lists are saved to the state directory (policy: guard.save_every)")
	// Live mode only.
	policyFile := fs.String("c", policy.DefaultPath, "policy `file`: live mode's settings (its guard: section), the trusted networks, the inspector's hostnames and signatures")
	stateDir := stateDirFlag(fs)
	backendName := fs.String("backend", "", "backend the ruleset was applied with (default: read from the state directory)")
	amiSecret := fs.String("ami-secret", "", "manager secret (prefer $SIPWALL_AMI_SECRET or a secret file: a flag shows in ps)")
	verbose := fs.Bool("v", false, "log every decision, including ignored failures")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The policy's guard section, the flags given explicitly on top, then
	// one validation.
	overrides := []struct {
		flag, key string
		write     func(g *policy.Guard)
	}{
		{"findtime", "guard.findtime", func(g *policy.Guard) { g.FindTime.Duration = *findTime }},
		{"maxretry", "guard.maxretry", func(g *policy.Guard) { g.MaxRetry = *maxRetry }},
		{"bantime", "guard.bantime", func(g *policy.Guard) { g.BanTime.Duration = *banTime }},
		{"bantime-factor", "guard.bantime_factor", func(g *policy.Guard) { g.BanTimeFactor = *banFactor }},
		{"max-bantime", "guard.max_bantime", func(g *policy.Guard) { g.MaxBanTime.Duration = *maxBanTime }},
		{"max-line", "guard.max_line", func(g *policy.Guard) { g.MaxLine = *maxLine }},
		{"ipv6-prefix", "guard.ipv6_prefix", func(g *policy.Guard) { g.IPv6Prefix = *ipv6Prefix }},
		{"ignore-self", "guard.ignore_self", func(g *policy.Guard) { g.IgnoreSelf = *ignoreSelf }},
		{"never-ban", "guard.never_ban", func(g *policy.Guard) {
			g.NeverBan = nil
			for _, n := range neverBan {
				g.NeverBan = append(g.NeverBan, policy.Prefix{Prefix: n})
			}
		}},
		{"log", "guard.logs", func(g *policy.Guard) { g.Logs = logs }},
		{"ami", "guard.ami.address", func(g *policy.Guard) { g.AMI.Address = *amiAddr }},
		{"ami-user", "guard.ami.user", func(g *policy.Guard) { g.AMI.User = *amiUser }},
		{"ami-secret-file", "guard.ami.secret_file", func(g *policy.Guard) { g.AMI.SecretFile = *amiSecretFile }},
		{"no-inspect", "guard.inspect", func(g *policy.Guard) { g.Inspect = !*noInspect }},
		{"metrics", "guard.metrics", func(g *policy.Guard) { g.Metrics = *metricsAddr }},
		{"poll", "guard.poll", func(g *policy.Guard) { g.Poll.Duration = *poll }},
		{"resolve-every", "guard.resolve_every", func(g *policy.Guard) { g.ResolveEvery.Duration = *resolveEvery }},
		{"save-every", "guard.save_every", func(g *policy.Guard) { g.SaveEvery.Duration = *saveEvery }},
	}
	withFlags := func(p *policy.Policy) *policy.Policy {
		for _, o := range overrides {
			if set[o.flag] {
				o.write(&p.Guard)
				p.SetByFlag(o.key, "--"+o.flag)
			}
		}
		return p
	}
	var p *policy.Policy
	if !*scanLog || set["c"] {
		var ok bool
		if p, ok = loadPolicy(e, *policyFile); !ok {
			// Say what is wrong with the flags too.
			for _, err := range policy.FlagErrors(withFlags(policy.Default()).ValidateGuard()) {
				fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
			}
			return exitUsage
		}
		withFlags(p)
		if err := p.Validate(); err != nil {
			printErrors(e, "sipwall guard", err)
			return exitUsage
		}
	} else {
		p = withFlags(policy.Default())
		if err := p.ValidateGuard(); err != nil {
			printErrors(e, "sipwall guard", err)
			return exitUsage
		}
	}

	if !*scanLog {
		if fs.NArg() > 0 {
			fmt.Fprintf(e.stderr, "sipwall guard: unexpected argument %q (follow files with --log FILE; analyse them with --scan-log)\n", fs.Arg(0))
			return exitUsage
		}
		secret := os.Getenv("SIPWALL_AMI_SECRET")
		if set["ami-secret"] {
			secret = *amiSecret
		}
		d, err := guard.Setup(p, guard.Env{StateDir: *stateDir, Backend: *backendName, AMISecret: secret, Log: e.stderr, Verbose: *verbose})
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
			return exitUsage
		}
		return runDaemon(e, d)
	}
	return scanFiles(e, fs.Args(), guard.Options{
		MaxLine: p.Guard.MaxLine,
		Jail:    guard.JailConfig(p),
	}, *asJSON, *listMatches)
}

// printErrors prints err, one line each, after the command's name.
func printErrors(e *env, cmd string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(e.stderr, "%s: %s\n", cmd, line)
	}
}

// runDaemon runs guard's daemon until it is stopped (tests replace it).
var runDaemon = func(e *env, d *guard.Daemon) int {
	if err := d.Run(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// scanFiles opens the log files of --scan-log and analyses them.
func scanFiles(e *env, files []string, opts guard.Options, asJSON, listMatches bool) int {
	if len(files) == 0 {
		fmt.Fprintln(e.stderr, "sipwall guard: --scan-log needs at least one log FILE")
		return exitUsage
	}
	var inputs []guard.Input
	for _, name := range files {
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
	return scanLogs(e, inputs, opts, asJSON, listMatches)
}

// guardStatus reads guard's status from the state directory; a status that
// says running but whose process is gone is reported as not running.
func guardStatus(stateDir string) (guard.Status, bool) {
	st, ok, err := guard.ReadStatus(stateDir)
	if err != nil || !ok {
		return st, false
	}
	if st.Running && st.PID > 0 && syscall.Kill(st.PID, 0) == syscall.ESRCH {
		st.Running = false
	}
	return st, true
}

// printGuardStatus prints guard's lines of `sipwall status`.
func printGuardStatus(w io.Writer, stateDir string) {
	st, ok := guardStatus(stateDir)
	if !ok {
		return
	}
	state := "stopped " + st.At.Local().Format(time.RFC3339)
	if st.Running {
		state = fmt.Sprintf("running since %s (pid %d)", st.At.Local().Format(time.RFC3339), st.PID)
	}
	fmt.Fprintf(w, "guard:    %s, backend %s, logs %s\n", state, st.Backend, strings.Join(st.Logs, ", "))
	for _, p := range st.Problems {
		fmt.Fprintf(w, "          warning: %s %s\n", p.Input, p.Problem)
	}
}
