package guard

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/crowdsec"
	"github.com/sipwall/sipwall/internal/feeds"
	"github.com/sipwall/sipwall/internal/guard/live"
	"github.com/sipwall/sipwall/internal/policy"
)

// Fleet is what guard shares with other hosts: a CrowdSec LAPI (its
// decisions pulled into the fleet list, guard's bans pushed as alerts) and
// the blocklist feeds.
type Fleet struct {
	CrowdSec  *crowdsec.Config // nil: no LAPI
	PullEvery time.Duration
	Scopes    []string
	Origins   []string
	Feeds     []feeds.Feed
	// SSHPorts are the policy's SSH ports: a decision or a feed entry
	// covering a client connected to one of them is not enforced.
	SSHPorts []policy.Port
}

// policyFile resolves a file the policy names, relative to its directory.
func policyFile(p *policy.Policy, key, file string) string {
	if file != "" && !filepath.IsAbs(file) && p.Flag(key) == "" && p.Source != "" {
		return filepath.Join(filepath.Dir(p.Source), file)
	}
	return file
}

// FleetFromPolicy reads the crowdsec and feeds sections, secrets
// included; nil when the policy has neither.
func FleetFromPolicy(p *policy.Policy) (*Fleet, error) {
	c := p.CrowdSec
	if !c.Enabled() && len(p.Feeds) == 0 {
		return nil, nil
	}
	f := &Fleet{SSHPorts: p.SSH.Ports}
	secret := func(key, file string) (string, error) {
		s, err := crowdsec.ReadSecret(policyFile(p, key, file))
		if err != nil {
			return "", fmt.Errorf("%s: %w", p.Where(key), err)
		}
		return s, nil
	}
	if c.Enabled() {
		key, err := secret("crowdsec.key_file", c.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg := &crowdsec.Config{URL: c.URL, APIKey: key, MachineID: c.MachineID,
			CAFile:   policyFile(p, "crowdsec.ca_file", c.CAFile),
			CertFile: policyFile(p, "crowdsec.cert_file", c.CertFile), KeyFile: policyFile(p, "crowdsec.cert_key_file", c.CertKeyFile)}
		if c.MachineID != "" {
			if cfg.Password, err = secret("crowdsec.password_file", c.PasswordFile); err != nil {
				return nil, err
			}
		}
		if _, err := crowdsec.NewClient(*cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Where("crowdsec.url"), err)
		}
		f.CrowdSec, f.PullEvery, f.Scopes, f.Origins = cfg, c.PullEvery.Duration, c.Scopes, c.Origins
	}
	for i, pf := range p.Feeds {
		feed := feeds.Feed{Name: pf.Name, URL: pf.URL, Format: feeds.Format(pf.Format), Every: pf.Every.Duration, Max: pf.Max}
		if feed.Max == 0 {
			feed.Max = p.Lists.Capacity
		}
		if !strings.Contains(pf.URL, "://") {
			feed.URL = policyFile(p, fmt.Sprintf("feeds[%d].url", i), pf.URL)
		}
		if pf.KeyFile != "" {
			k, err := secret(fmt.Sprintf("feeds[%d].key_file", i), pf.KeyFile)
			if err != nil {
				return nil, err
			}
			feed.Key = k
		}
		f.Feeds = append(f.Feeds, feed)
	}
	return f, nil
}

// neverFromOutside are the sources no decision or feed may cut: the
// never-banned networks and this host's own addresses, whatever
// guard.ignore_self says (that setting is about the PBX's log).
func neverFromOutside(never []netip.Prefix) []netip.Prefix {
	out := append([]netip.Prefix(nil), never...)
	for _, a := range ownAddresses() {
		if !a.IsLoopback() {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// protector says why a prefix must not be banned from outside: it covers a
// never-banned source (trusted networks, guard.never_ban, the host's own
// addresses with ignore_self), loopback, or an SSH client connected now.
type protector struct {
	never    []netip.Prefix
	sshPorts []policy.Port

	mu      sync.Mutex
	clients []netip.Addr
	read    time.Time
}

func (pr *protector) why(p netip.Prefix) string {
	if p.Contains(netip.MustParseAddr("127.0.0.1")) || p.Contains(netip.IPv6Loopback()) {
		return "covers loopback"
	}
	for _, n := range pr.never {
		if n.Overlaps(p) {
			return "covers " + backend.FormatPrefix(n) + ", never banned (trusted, guard.never_ban or this host)"
		}
	}
	for _, a := range pr.sshClients() {
		if p.Contains(a) {
			return "covers " + a.String() + ", connected to SSH now"
		}
	}
	return ""
}

// sshClients are the peers of established TCP connections to the SSH
// ports, read from /proc/net/tcp{,6} at most every 5 s.
func (pr *protector) sshClients() []netip.Addr {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if time.Since(pr.read) < 5*time.Second {
		return pr.clients
	}
	pr.read = time.Now()
	pr.clients = pr.clients[:0]
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		pr.clients = append(pr.clients, establishedPeers(f, pr.sshPorts)...)
	}
	return pr.clients
}

// establishedPeers parses a /proc/net/tcp file for ESTABLISHED sockets
// whose local port is one of ports and returns their remote addresses.
func establishedPeers(path string, ports []policy.Port) []netip.Addr {
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(fh)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "01" { // TCP_ESTABLISHED
			continue
		}
		_, lport, ok1 := procAddr(f[1])
		raddr, _, ok2 := procAddr(f[2])
		if !ok1 || !ok2 {
			continue
		}
		for _, p := range ports {
			if lport >= p.From && lport <= p.To {
				out = append(out, raddr)
				break
			}
		}
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:0016" (address in host byte
// order by 32-bit words, port in hex).
func procAddr(s string) (netip.Addr, uint16, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || (len(h) != 8 && len(h) != 32) {
		return netip.Addr{}, 0, false
	}
	b := make([]byte, len(h)/2)
	for i := 0; i < len(h)/8; i++ {
		w, err := strconv.ParseUint(h[i*8:i*8+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, false
		}
		// each 32-bit word is little-endian on the machines sipwall runs on
		b[i*4], b[i*4+1], b[i*4+2], b[i*4+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), uint16(port), true
}

// fleetRun is the fleet's running part.
type fleetRun struct {
	lapi    string
	bouncer *crowdsec.Bouncer
	watcher *crowdsec.Watcher
	feeds   *feeds.Runner
}

// status is the fleet's state for guard's status file.
func (r *fleetRun) status() *FleetStatus {
	if r == nil {
		return nil
	}
	st := &FleetStatus{Updated: time.Now().UTC(), LAPI: r.lapi}
	if r.bouncer != nil {
		b := r.bouncer.Status()
		st.Bouncer = &b
	}
	if r.watcher != nil {
		w := r.watcher.Status()
		st.Watcher = &w
	}
	if r.feeds != nil {
		st.Feeds = r.feeds.States()
	}
	return st
}

// startFleet starts the bouncer, the watcher and the feeds on store; the
// returned OnBan hook hands guard's bans to the watcher.
func startFleet(ctx context.Context, f *Fleet, store backend.SetStore, maxTimeout time.Duration, never []netip.Prefix, reg prometheus.Registerer, log *slog.Logger, wg *sync.WaitGroup) (*fleetRun, func(live.Ban)) {
	pr := &protector{never: never, sshPorts: f.SSHPorts}
	run := &fleetRun{}
	if f.CrowdSec != nil {
		run.lapi = f.CrowdSec.URL
	}
	var onBan func(live.Ban)
	if f.CrowdSec != nil {
		client, _ := crowdsec.NewClient(*f.CrowdSec) // checked by Setup
		m := crowdsec.NewMetrics(reg)
		run.bouncer = &crowdsec.Bouncer{
			Client: client, Decisions: crowdsec.NewDecisions(pr.why), Every: f.PullEvery,
			Sink:   crowdsec.StoreSink{Store: store, MaxTimeout: maxTimeout},
			Scopes: f.Scopes, Origins: f.Origins, Log: log.With("part", "crowdsec"), Metrics: m,
		}
		wg.Add(1)
		go func() { defer wg.Done(); run.bouncer.Run(ctx) }()
		if client.CanPush() {
			run.watcher = &crowdsec.Watcher{Client: client, Log: log.With("part", "crowdsec"), Metrics: m}
			wg.Add(1)
			go func() { defer wg.Done(); run.watcher.Run(ctx) }()
			onBan = func(b live.Ban) { run.watcher.Report(report(b)) }
			// The kernel bans by itself too (trap ports; scanner
			// signatures on iptables): those are pushed as they appear.
			wg.Add(1)
			go func() { defer wg.Done(); kernelBans(ctx, store, run.watcher, log) }()
		}
		log.Info("crowdsec", "url", f.CrowdSec.URL, "pull_every", run.bouncer.Every, "push", client.CanPush())
	}
	if len(f.Feeds) > 0 {
		run.feeds = &feeds.Runner{Fetcher: &feeds.Fetcher{UserAgent: "sipwall"}, Feeds: f.Feeds,
			Sink: feeds.StoreSink{Store: store}, Protect: pr.why, Log: log.With("part", "feeds"), Metrics: feeds.NewMetrics(reg)}
		wg.Add(1)
		go func() { defer wg.Done(); run.feeds.Run(ctx) }()
	}
	return run, onBan
}

// report turns a guard ban into the watcher's report.
func report(b live.Ban) crowdsec.Report {
	meta := map[string]string{"service": "sip"}
	msg := fmt.Sprintf("%s banned by sipwall", b.Addr.Unmap())
	switch b.Kind {
	case "scanner":
		meta["signature"] = b.Signature
		msg += ": SIP scanner signature " + strconv.Quote(b.Signature)
	case "auth":
		meta["last_event"] = b.LastEvent
		meta["failures"] = strconv.Itoa(b.Failures)
		msg += fmt.Sprintf(": %d authentication failures (last %s)", b.Failures, b.LastEvent)
	}
	d := b.For
	if d <= 0 {
		d = 24 * time.Hour // a ban "forever" here is a day's ban for the fleet
	}
	return crowdsec.Report{Kind: b.Kind, Source: b.Addr, For: d, Start: b.At, Stop: b.At,
		Events: []crowdsec.Event{{Time: b.At, Meta: meta}}, Message: msg}
}

// kernelBanEvery is how often the lists the kernel fills are read for new
// bans to push.
const kernelBanEvery = 5 * time.Second

// kernelBans pushes the bans the kernel makes itself (the trapped list, and
// the scanners list where guard did not write the entry: iptables matches
// signatures in the kernel) as they appear. Entries present at start are
// taken as known.
func kernelBans(ctx context.Context, store backend.SetStore, w *crowdsec.Watcher, log *slog.Logger) {
	known := map[string]map[netip.Prefix]bool{}
	read := func(first bool) {
		es, err := store.Read(ctx, compile.SetTrapped, compile.SetScanners)
		if err != nil {
			// A ruleset without one of the lists (scanners-only mode):
			// read them one by one.
			es = nil
			for _, l := range []string{compile.SetTrapped, compile.SetScanners} {
				more, err := store.Read(ctx, l)
				if err == nil {
					es = append(es, more...)
				}
			}
		}
		now := time.Now()
		seen := map[string]map[netip.Prefix]bool{}
		for _, e := range es {
			if seen[e.List] == nil {
				seen[e.List] = map[netip.Prefix]bool{}
			}
			seen[e.List][e.Prefix] = true
			if first || known[e.List][e.Prefix] {
				continue
			}
			kind := "trap"
			meta := map[string]string{"service": "any", "reason": "touched a trap port"}
			if e.List == compile.SetScanners {
				if _, byGuard := compile.SignatureOf(e.Comment); byGuard {
					continue // guard's own ban, pushed when made
				}
				kind, meta = "scanner", map[string]string{"service": "sip", "reason": "scanner signature (matched in the kernel)"}
			}
			d := e.Remaining
			if d <= 0 {
				d = 24 * time.Hour
			}
			w.Report(crowdsec.Report{Kind: kind, Source: e.Prefix.Addr(), For: d, Start: now, Stop: now,
				Events: []crowdsec.Event{{Time: now, Meta: meta}}, Message: fmt.Sprintf("%s banned by sipwall: %s", e.Prefix.Addr(), meta["reason"])})
		}
		known = seen
	}
	read(true)
	t := time.NewTicker(kernelBanEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read(false)
		}
	}
}
