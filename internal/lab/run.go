package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The lab's cast. Every attacker and phone has a namespace of its own, so
// that its counters count its traffic only.
var (
	attackers = []struct {
		name, src string
		argv      []string
		timeout   time.Duration
	}{
		{"svmap", "203.0.113.11", []string{"svmap", "-p5060", serverV4}, 6 * time.Second},
		{"svwar", "203.0.113.12", []string{"svwar", "--force", "-e1000-1010", serverV4}, 8 * time.Second},
		{"svcrack", "203.0.113.13", []string{"svcrack", "-u1001", "-r1-20", serverV4}, 8 * time.Second},
		{"sipsak", "203.0.113.14", []string{"sipsak", "-s", "sip:100@" + serverV4}, 6 * time.Second},
		{"nmap-sip", "203.0.113.15", []string{"nmap", "-n", "-Pn", "-sU", "-p5060", "--script", "sip-methods,sip-enum-users",
			"--script-args", "sip-enum-users.minext=1000,sip-enum-users.maxext=1010", "--host-timeout", "10s", serverV4}, 12 * time.Second},
		{"svmap-v6", "2001:db8:20::11", []string{"svmap", "-6", "-p5060", serverV6}, 6 * time.Second},
		{"svwar-v6", "2001:db8:20::12", []string{"svwar", "-6", "--force", "-e1000-1010", serverV6}, 8 * time.Second},
		{"svcrack-v6", "2001:db8:20::13", []string{"svcrack", "-6", "-u1001", "-r1-20", serverV6}, 8 * time.Second},
	}
	portScanner = struct{ name, src string }{"portscan", "203.0.113.16"}
	synFlooder  = struct{ name, src string }{"hping3", "203.0.113.17"}
	phones      = []struct{ name, transport, src string }{
		{"phone-udp", "udp", "198.51.100.21"},
		{"phone-tcp", "tcp", "198.51.100.22"},
		{"phone-v6", "udp", "2001:db8:30::21"},
	}
	floodPhone = struct{ name, src string }{"phone-flood", "198.51.100.23"}
	trapPorts  = "21,22,23,25,80,443,1433,3128,3306,3389,4899,5900"
	crowdSize  = 130
)

func crowdAddrs() []string {
	var out []string
	for i := 0; i < crowdSize; i++ {
		out = append(out, "203.0.113."+strconv.Itoa(100+i))
	}
	return out
}

// one is a single run: one Internet, one firewall.
type one struct {
	*lab
	kind firewall
	in   *internet
	srv  *host
	dir  string
	rep  *RunReport
	mu   sync.Mutex
	// guard is sipwall guard, running in the server namespace on the
	// nftables backend.
	guard *proc
}

func (o *one) fail(format string, a ...any) {
	o.mu.Lock()
	o.rep.Errors = append(o.rep.Errors, fmt.Sprintf(format, a...))
	o.mu.Unlock()
}

func describe(k firewall) (string, string) {
	switch k {
	case fwIPTables:
		return "sipwall", "sipwall apply --backend iptables"
	case fwNFTables:
		return "sipwall", "sipwall apply --backend nftables, sipwall guard"
	case fwArticle:
		return "article", "the article's ruleset (sipwall compile --profile article, iptables-restore)"
	}
	return "none", "no firewall"
}

func (l *lab) runOne(ctx context.Context, kind firewall, letter string) (*RunReport, error) {
	name, desc := describe(kind)
	o := &one{lab: l, kind: kind, rep: &RunReport{Name: name, Firewall: desc}}
	o.dir = filepath.Join(l.dir, name)
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	o.in = newInternet(fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), letter), l.env)
	defer func() {
		if l.opt.Keep && ctx.Err() == nil {
			l.logf("[%s] kept: namespaces %s-*; Ctrl-C removes them", name, o.in.id)
			<-ctx.Done()
		}
		o.in.close()
	}()
	if err := o.build(ctx); err != nil {
		return nil, err
	}
	l.logf("[%s] network up, SIP server answering; applying: %s", name, desc)
	if err := o.apply(ctx); err != nil {
		return nil, err
	}
	if err := o.traffic(ctx); err != nil {
		return nil, err
	}
	o.guardAlive("the end of the traffic")
	if kind == fwIPTables || kind == fwNFTables {
		o.saveRestore(ctx)
	}
	o.guardAlive("the end of the run")
	if o.guard != nil {
		b, _ := os.ReadFile(filepath.Join(o.dir, "guard.log"))
		o.rep.Guard.Admitted, o.rep.Guard.Scanners = parseGuardLog(string(b))
	}
	l.logf("[%s] done", name)
	return o.rep, ctx.Err()
}

// build creates the Internet, starts the SIP server and the SSH listener.
func (o *one) build(ctx context.Context) error {
	in := o.in
	if err := in.up(ctx); err != nil {
		return err
	}
	var err error
	if o.srv, err = in.addHost(ctx, "server", serverV4+"/24", serverV6+"/64"); err != nil {
		return err
	}
	clients := map[string][]string{}
	for _, a := range attackers {
		clients[a.name] = []string{a.src}
	}
	for _, p := range phones {
		clients[p.name] = []string{p.src}
	}
	clients[portScanner.name] = []string{portScanner.src}
	clients[synFlooder.name] = []string{synFlooder.src}
	clients[floodPhone.name] = []string{floodPhone.src}
	clients["crowd"] = crowdAddrs()
	for role, addrs := range clients {
		h, err := in.addHost(ctx, role, addrs...)
		if err != nil {
			return err
		}
		if err := loadCounters(ctx, h.ns); err != nil {
			return err
		}
	}
	cfg := filepath.Join(o.dir, "kamailio.cfg")
	if err := os.WriteFile(cfg, []byte(kamailioCfg), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(o.dir, "kamailio.log"))
	if err != nil {
		return err
	}
	in.onClose(func() { logf.Close() })
	// The server runs until the lab ends: not bound to ctx, killed by close.
	cmd := in.command(context.Background(), o.srv.ns, "kamailio", "-f", cfg, "-DD", "-E", "-Y", o.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if _, err := in.start(cmd); err != nil {
		return fmt.Errorf("lab: kamailio: %w", err)
	}
	if err := in.listenTCP(o.srv.ns, sshPort); err != nil {
		return err
	}
	for i := 0; ; i++ {
		ok, _ := sipExchange(o.srv.ns, serverV4, serverV4, sipRequest("OPTIONS", serverV4, serverV4, "lab"), 200*time.Millisecond)
		if ok {
			break
		}
		if i == 50 || ctx.Err() != nil {
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("lab: kamailio does not answer (see its log):\n%s", tail(string(b), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sipwall runs the sipwall binary in ns.
func (o *one) sipwall(ctx context.Context, ns string, args ...string) (string, error) {
	cmd := o.in.command(ctx, ns, append([]string{o.opt.Sipwall}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("sipwall %s: %w: %s", args[0], err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (o *one) stateDir() string { return filepath.Join(o.dir, "state") }

func (o *one) applySipwall(ctx context.Context) error {
	// With nftables guard is started right after (no systemd here).
	_, err := o.sipwall(ctx, o.srv.ns, "apply", "-c", o.policy, "--backend", string(o.kind), "--state-dir", o.stateDir(), "--confirm", "0", "--without-guard")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if o.kind == fwNFTables {
		// nftables cannot search packets for strings: the knock and the
		// scanner signatures are guard's job.
		return o.startGuard(ctx)
	}
	return nil
}

// startGuard runs `sipwall guard` in the server namespace, as on a real
// server: the same policy, the state directory of the apply, no metrics
// listener. It reads the SIP packets of unknown sources from nflog and
// admits (hostname knock) or bans (scanner signature) them. It runs until
// the lab ends (killed and reaped by close); the run fails if it is not
// ready within 10 s.
func (o *one) startGuard(ctx context.Context) error {
	logf, err := os.Create(filepath.Join(o.dir, "guard.log"))
	if err != nil {
		return err
	}
	o.in.onClose(func() { logf.Close() })
	cmd := o.in.command(context.Background(), o.srv.ns, o.opt.Sipwall, "guard", "-c", o.policy, "--state-dir", o.stateDir(), "--metrics", "off")
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := o.in.start(cmd)
	if err != nil {
		return fmt.Errorf("lab: sipwall guard: %w", err)
	}
	o.guard = p
	o.rep.Guard = &Guard{Command: "sipwall guard -c POLICY --state-dir STATE --metrics off"}
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, _ := os.ReadFile(logf.Name())
		if bytes.Contains(b, []byte("msg=\"guard running\"")) {
			return nil
		}
		if done, err := p.exited(); done {
			return fmt.Errorf("lab: sipwall guard exited (%v):\n%s", err, tail(string(b), 10))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lab: sipwall guard not running after 10 s:\n%s", tail(string(b), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// guardAlive records a failure when guard has stopped during the run.
func (o *one) guardAlive(step string) {
	if o.guard == nil {
		return
	}
	if done, err := o.guard.exited(); done {
		b, _ := os.ReadFile(filepath.Join(o.dir, "guard.log"))
		o.fail("sipwall guard exited before %s (%v): %s", step, err, tail(string(b), 5))
	}
}

func (o *one) apply(ctx context.Context) error {
	switch o.kind {
	case fwIPTables, fwNFTables:
		return o.applySipwall(ctx)
	case fwArticle:
		out := filepath.Join(o.dir, "article")
		if _, err := o.sipwall(ctx, "", "compile", "-c", o.policy, "--profile", "article", "--backend", "iptables", "-o", out); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if _, err := os.Stat(filepath.Join(out, "ipsets")); err == nil {
			if _, err := run(ctx, o.srv.ns, "ipset", "-exist", "restore", "-file", filepath.Join(out, "ipsets")); err != nil {
				return fmt.Errorf("lab: article ruleset: %w", err)
			}
		}
		for file, tool := range map[string]string{"rules.v4": "iptables-restore", "rules.v6": "ip6tables-restore"} {
			if _, err := os.Stat(filepath.Join(out, file)); err != nil {
				continue
			}
			if _, err := run(ctx, o.srv.ns, tool, filepath.Join(out, file)); err != nil {
				return fmt.Errorf("lab: article ruleset: %w", err)
			}
		}
	}
	return nil
}

// tool runs argv in h's namespace for at most timeout. Scanners that get no
// answer wait; being stopped at the timeout is normal for them.
func (o *one) tool(ctx context.Context, h *host, timeout time.Duration, argv ...string) (string, string) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := o.in.command(tctx, h.ns, argv...)
	cmd.Dir = o.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return "interrupted", out.String()
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("stopped after %s", timeout), out.String()
	case err != nil:
		return err.Error(), out.String()
	}
	return "ok", out.String()
}

func (o *one) host(role string) *host { return o.in.hosts[role] }

func (o *one) counters(ctx context.Context, role string) counts {
	c, err := readCounters(ctx, o.host(role).ns)
	if err != nil {
		o.fail("%s: %v", role, err)
	}
	return c
}

func dst(src string) string {
	if strings.Contains(src, ":") {
		return serverV6
	}
	return serverV4
}

// traffic runs the attackers and phones, then the comeback, the trap ban's
// end and the flooding phone's second chance, and fills the report.
func (o *one) traffic(ctx context.Context) error {
	rep := o.rep
	var wg sync.WaitGroup
	rep.Attackers = make([]*Attacker, len(attackers))
	for i, a := range attackers {
		rep.Attackers[i] = &Attacker{Name: a.name, Source: a.src, Command: strings.Join(a.argv, " ")}
		wg.Go(func() {
			exit, _ := o.tool(ctx, o.host(a.name), a.timeout, a.argv...)
			rep.Attackers[i].Exit = exit
		})
	}
	// The port scanner: SSH works, then a SYN scan of the trap ports, then SSH again.
	var lastProbe time.Time
	ps := &Attacker{Name: portScanner.name, Source: portScanner.src,
		Command: "nmap -n -Pn -sS -p " + trapPorts + " --max-retries 0 " + serverV4}
	wg.Go(func() {
		h := o.host(portScanner.name)
		rep.SSH.ScannerBefore = dialTCP(h.ns, h.addrs[0], serverV4, sshPort, 3*time.Second)
		ps.Exit, _ = o.tool(ctx, h, 10*time.Second, "nmap", "-n", "-Pn", "-sS", "-p", trapPorts, "--max-retries", "0", "--host-timeout", "8s", serverV4)
		rep.SSH.ScannerAfterScan = dialTCP(h.ns, h.addrs[0], serverV4, sshPort, 1500*time.Millisecond)
		lastProbe = time.Now()
	})
	fl := &Attacker{Name: synFlooder.name, Source: synFlooder.src,
		Command: fmt.Sprintf("hping3 -S -p %d -i u5000 -c 300 %s", sshPort, serverV4)}
	wg.Go(func() {
		fl.Exit, _ = o.tool(ctx, o.host(synFlooder.name), 8*time.Second, "hping3", "-q", "-I", "eth0", "-S", "-p", strconv.Itoa(sshPort), "-i", "u5000", "-c", "300", serverV4)
	})
	rep.Phones = make([]*Phone, len(phones))
	for i, p := range phones {
		rep.Phones[i] = &Phone{Name: p.name, Transport: p.transport, Source: p.src}
		if strings.Contains(p.src, ":") {
			rep.Phones[i].Transport = "udp6"
		}
		wg.Go(func() { o.phone(ctx, o.host(p.name), p.transport, rep.Phones[i]) })
	}
	rep.Flood = &Flood{Source: floodPhone.src}
	wg.Go(func() { o.flood(ctx, rep.Flood) })
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.Attackers = append(rep.Attackers, ps, fl)
	h := o.host(phones[0].name)
	rep.SSH.Phone = dialTCP(h.ns, h.addrs[0], serverV4, sshPort, 3*time.Second)
	rep.SSH.BanFor = o.banFor.String()

	lists := o.readLists(ctx)
	for _, a := range rep.Attackers {
		c := o.counters(ctx, a.Name)
		a.SIPSent, a.SIPAnswers, a.SYNSent, a.SYNACKs = c.SIPOut, c.SIPIn, c.SYNOut, c.SYNACKIn
		a.Lists = lists.of(a.Source)
	}
	for _, p := range rep.Phones {
		c := o.counters(ctx, p.Name)
		p.SIPSent, p.SIPAnswers = c.SIPOut, c.SIPIn
		p.Lists = lists.of(p.Source)
	}
	fc := o.counters(ctx, floodPhone.name)
	rep.Flood.Sent, rep.Flood.Answers = fc.SIPOut, fc.SIPIn
	rep.Flood.Lists = lists.of(floodPhone.src)
	rep.Flood.RateLimited = rep.Flood.Answers > 0 && rep.Flood.Answers*4 < rep.Flood.Sent*3

	// Second part, at once: the flooding phone registers again after a
	// pause; a crowd of scanners passes by; the first scanner comes back.
	wg.Go(func() {
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-ctx.Done():
			return
		}
		again := &Phone{}
		o.phone(ctx, o.host(floodPhone.name), "udp", again)
		rep.Flood.RegistersAfter = again.Registered && again.CallAnswered
		rep.Flood.ListsAfter = o.readLists(ctx).of(floodPhone.src)
	})
	wg.Go(func() { o.comeback(ctx) })
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// The trap ban ends ban_for after the port scanner's last packet.
	if o.banFor > 0 && o.banFor <= time.Minute {
		wait := max(0, time.Until(lastProbe.Add(o.banFor+1500*time.Millisecond)))
		if wait > 0 {
			o.logf("[%s] waiting %s for the trap ban (%s) to end", rep.Name, wait.Round(time.Second), o.banFor)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		h := o.host(portScanner.name)
		ok := dialTCP(h.ns, h.addrs[0], serverV4, sshPort, 3*time.Second)
		rep.SSH.ScannerAfterBan = &ok
	}
	switch o.kind {
	case fwIPTables, fwArticle:
		d, err := kernelDrops(ctx, o.srv.ns, false)
		if err != nil {
			o.fail("counters: %v", err)
		}
		rep.Drops = &d
	case fwNFTables:
		d, err := kernelDrops(ctx, o.srv.ns, true)
		if err != nil {
			o.fail("counters: %v", err)
		}
		rep.Drops = &d
	}
	return nil
}

// phone runs the register-then-call scenario with sipp from h.
func (o *one) phone(ctx context.Context, h *host, transport string, p *Phone) {
	sf := filepath.Join(o.dir, "register-call.xml")
	writeOnce(sf, tmpl(registerCallXML))
	msgs := filepath.Join(o.dir, h.role+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log")
	src := h.addrs[0]
	target := serverV4 + ":5060"
	if strings.Contains(src, ":") {
		target = "[" + serverV6 + "]:5060"
	}
	t := "u1"
	if transport == "tcp" {
		t = "t1"
	}
	exit, out := o.tool(ctx, h, 15*time.Second, "sipp", target, "-sf", sf, "-m", "1", "-i", src, "-t", t,
		"-nostdin", "-timeout", "12s", "-timeout_error", "-trace_msg", "-message_file", msgs)
	p.Exit = exit
	if exit != "ok" {
		p.Exit = exit + ": " + tail(strings.TrimSpace(out), 2)
	}
	b, _ := os.ReadFile(msgs)
	p.Registered, p.CallAnswered, p.RegisterRetransmissions = parseSippLog(string(b))
}

var writeMu sync.Mutex

func writeOnce(path, text string) {
	writeMu.Lock()
	defer writeMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return
	}
	os.WriteFile(path, []byte(text), 0o644)
}

// parseSippLog reads sipp's -trace_msg log: the phone registered when a 200
// answered its authenticated REGISTER (CSeq 2), the call was answered when
// a 200 answered its INVITE; the first REGISTER sent more than once counts
// retransmissions.
func parseSippLog(log string) (registered, answered bool, retrans int) {
	firstRegister := 0
	for _, block := range strings.Split(log, "-----------------------------------------------") {
		sent := strings.Contains(block, "message sent")
		recv := strings.Contains(block, "message received")
		switch {
		case sent && strings.Contains(block, "\nCSeq: 1 REGISTER"):
			firstRegister++
		case recv && strings.Contains(block, "\nSIP/2.0 200") && strings.Contains(block, "\nCSeq: 2 REGISTER"):
			registered = true
		case recv && strings.Contains(block, "\nSIP/2.0 200") && strings.Contains(block, "\nCSeq: 1 INVITE"):
			answered = true
		}
	}
	if firstRegister > 1 {
		retrans = firstRegister - 1
	}
	return
}

// flood sends 150 REGISTERs at 100 per second from the flooding phone.
func (o *one) flood(ctx context.Context, f *Flood) {
	h := o.host(floodPhone.name)
	sf := filepath.Join(o.dir, "register-flood.xml")
	writeOnce(sf, tmpl(registerFloodXML))
	f.Exit, _ = o.tool(ctx, h, 10*time.Second, "sipp", serverV4+":5060", "-sf", sf, "-m", "150", "-r", "100",
		"-i", h.addrs[0], "-t", "u1", "-nostdin", "-timeout", "8s")
	if strings.HasPrefix(f.Exit, "exit status") {
		// sipp exits 1 when some calls "failed": here, unanswered REGISTERs.
		f.Exit = "ok (" + f.Exit + ": unanswered REGISTERs)"
	}
}

// comeback: many scanner sources pass by (more than the article's lists
// hold), then the first scanner comes back: does it reach SSH, does SIP
// answer it?
func (o *one) comeback(ctx context.Context) {
	cb := &o.rep.Comeback
	crowd := o.host("crowd")
	cb.Crowd = len(crowd.addrs)
	err := sendFrom(crowd.ns, crowd.addrs, serverV4, func(src string) string {
		return sipRequest("OPTIONS", serverV4, src, "friendly-scanner")
	})
	if err != nil {
		o.fail("crowd: %v", err)
		return
	}
	time.Sleep(300 * time.Millisecond)
	first := attackers[0]
	h := o.host(first.name)
	cb.Source = first.src
	before := o.counters(ctx, first.name)
	cb.SSH = dialTCP(h.ns, first.src, serverV4, sshPort, 1500*time.Millisecond)
	o.tool(ctx, h, first.timeout, first.argv...)
	after := o.counters(ctx, first.name)
	d := after.minus(before)
	cb.SIPSent, cb.SIPAnswers = d.SIPOut, d.SIPIn
	cb.Lists = o.readLists(ctx).of(first.src)
	cb.Blocked = !cb.SSH && cb.SIPAnswers == 0
}

// saveRestore saves the lists, flushes the whole ruleset of the server
// namespace (a reboot) and restores as at boot: the banned scanner must
// still be banned, the admitted phone still admitted.
func (o *one) saveRestore(ctx context.Context) {
	sr := &SaveRestore{}
	o.rep.SaveRestore = sr
	if !o.hasSave {
		sr.Detail = "not available yet: this sipwall has no save/restore commands"
		return
	}
	sr.Available = true
	if _, err := o.sipwall(ctx, o.srv.ns, "save", "--state-dir", o.stateDir()); err != nil {
		sr.Detail = err.Error()
		return
	}
	if err := flushAll(ctx, o.srv.ns); err != nil {
		sr.Detail = "flush: " + err.Error()
		return
	}
	if left := o.readLists(ctx); len(left) > 0 {
		sr.Detail = fmt.Sprintf("the flush left %d entries in the kernel", len(left))
		return
	}
	// At boot the kernel holds nothing: restore --boot loads the applied
	// ruleset, then the saved lists.
	if _, err := o.sipwall(ctx, o.srv.ns, "restore", "--boot", "--state-dir", o.stateDir()); err != nil {
		sr.Detail = err.Error()
		return
	}
	lists := o.readLists(ctx)
	scanner, phone := attackers[0], phones[0]
	sr.ScannerLists, sr.PhoneLists = lists.of(scanner.src), lists.of(phone.src)
	h := o.host(scanner.name)
	got, _ := sipExchange(h.ns, scanner.src, serverV4, sipRequest("OPTIONS", serverV4, scanner.src, "friendly-scanner"), time.Second)
	sr.ScannerBanned = !got && !dialTCP(h.ns, scanner.src, serverV4, sshPort, time.Second)
	sr.Detail = "sipwall save; every table and set of the server flushed; sipwall restore --boot"
	h = o.host(phone.name)
	sr.PhoneAdmitted, _ = sipExchange(h.ns, phone.src, serverV4, sipRequest("OPTIONS", serverV4, phone.src, "Zoiper rv2.10.20.4"), 3*time.Second)
}

// flushAll empties every firewall of namespace ns, as a reboot would.
func flushAll(ctx context.Context, ns string) error {
	var errs []error
	for _, t := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"raw", "mangle", "nat", "filter"} {
			run(ctx, ns, t, "-t", table, "-F")
			run(ctx, ns, t, "-t", table, "-X")
		}
		for _, c := range []string{"INPUT", "FORWARD", "OUTPUT"} {
			run(ctx, ns, t, "-P", c, "ACCEPT")
		}
	}
	if _, err := run(ctx, ns, "ipset", "destroy"); err != nil {
		errs = append(errs, err)
	}
	if _, err := run(ctx, ns, "nft", "flush", "ruleset"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseGuardLog reads guard's log (log/slog text): the addresses admitted by
// the inspector, in order, and the number of scanner bans.
func parseGuardLog(log string) (admitted []string, scanners int) {
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, " msg=admitted "):
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "addr="); ok {
					admitted = append(admitted, a)
				}
			}
		case strings.Contains(line, ` msg="banned a SIP scanner" `):
			scanners++
		}
	}
	return admitted, scanners
}
