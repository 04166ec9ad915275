package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/htmlreport"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/replay"
)

func runReplay(e *env) int {
	fs := newFlags(e, "replay", "[-c FILE] [--backend iptables|nftables] --local ADDR[,ADDR...] [--json] [--html FILE] CAPTURE...")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	backendName := fs.String("backend", "iptables", "ruleset `backend`: iptables or nftables")
	profile := fs.String("profile", "sipwall", "sipwall, or article for the article's own ruleset")
	local := fs.String("local", "", "the host's `addresses`, comma-separated: packets to them arrive, packets from them leave")
	iface := fs.String("iface", "eth0", "the `interface` packets arrive on")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	noGuard := fs.Bool("no-guard", false, "nftables: evaluate the kernel ruleset alone, without sipwall guard's inspector")
	htmlOut := fs.String("html", "", "also write the report as one self-contained HTML `file` (charts: packets over time, sources' timelines, rules)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "sipwall replay: no capture file given")
		fs.Usage()
		return exitUsage
	}
	var locals []netip.Addr
	for _, s := range strings.Split(*local, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall replay: --local: %q is not an address\n", s)
			return exitUsage
		}
		locals = append(locals, a.Unmap())
	}
	if len(locals) == 0 {
		fmt.Fprintln(e.stderr, "sipwall replay: --local: give the host's address(es), like --local 192.0.2.10,2001:db8::10")
		return exitUsage
	}
	name, err := backend.Parse(*backendName)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall replay: --backend: %v\n", err)
		return exitUsage
	}
	p, ok := loadPolicy(e, *file)
	if !ok {
		return exitUsage
	}
	rs, err := compilePolicy(e.ctx, p, name, *profile)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall replay: %v\n", err)
		return exitUsage
	}
	prog, err := engine.Compile(rs, name)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall replay: %v\n", err)
		return exitFailure
	}
	opt := replay.Options{Local: locals, Iface: *iface, Hostnames: p.SIP.Hostnames}
	if name == backend.NFTables && !*noGuard {
		// sipwall guard's inspector, configured from the policy as guard is.
		opt.Guard = replay.GuardFromPolicy(p)
	}
	var inputs []replay.Input
	var total int64
	// A capture that cannot be opened is reported like one that cannot be
	// read: a warning, the others still replayed, the report incomplete.
	var openErrs []string
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			openErrs = append(openErrs, err.Error())
			continue
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			total += st.Size()
		}
		inputs = append(inputs, replay.Input{Name: filepath.Base(name), R: f})
	}
	if bar := progressBar(e.stderr, total); bar != nil {
		opt.Progress = bar
		defer fmt.Fprint(e.stderr, "\r\033[K")
	}
	var timeline *htmlreport.Timeline
	if *htmlOut != "" {
		timeline = htmlreport.NewTimeline()
		opt.Trace = timeline.Trace
	}
	rep, runErr := replay.Run(prog, inputs, opt)
	if *htmlOut != "" {
		if err := writeReplayHTML(*htmlOut, rep, timeline, fs.Args()); err != nil {
			fmt.Fprintf(e.stderr, "sipwall replay: --html: %v\n", err)
			return exitFailure
		}
	}
	if len(openErrs) > 0 {
		rep.Warnings = append(openErrs, rep.Warnings...)
		rep.Complete = false
		if runErr == nil {
			runErr = errors.New(strings.Join(openErrs, "; "))
		}
	}
	if runErr != nil {
		for _, w := range rep.Warnings {
			fmt.Fprintf(e.stderr, "sipwall replay: warning: %s\n", w)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(e.stderr, "sipwall replay: %v\n", err)
			return exitFailure
		}
	} else {
		printReport(e.stdout, rep, prog)
	}
	if runErr != nil {
		fmt.Fprintln(e.stderr, "sipwall replay: the report is incomplete (see the warnings above)")
		return exitFailure
	}
	return exitOK
}

// progressBar returns a progress callback drawing on w when w is a terminal
// and the captures are large, or nil.
func progressBar(w io.Writer, total int64) func(int64) {
	f, ok := w.(*os.File)
	if !ok || total < 16<<20 {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	return func(read int64) {
		frac := float64(read) / float64(total)
		if frac > 1 {
			frac = 1
		}
		n := int(frac * 40)
		fmt.Fprintf(w, "\r[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", 40-n), frac*100, time.Since(start).Truncate(100*time.Millisecond))
	}
}

// printReport writes the human-readable report.
func printReport(w io.Writer, rep *replay.Report, prog *engine.Program) {
	fmt.Fprintf(w, "replay of %s (%s backend", strings.Join(rep.Files, ", "), rep.Backend)
	if rep.Guard {
		fmt.Fprint(w, ", with sipwall guard's inspector")
	}
	fmt.Fprintln(w, ")")
	if !rep.First.IsZero() {
		fmt.Fprintf(w, "%s to %s (%s)\n", rep.First.Format(time.RFC3339Nano), rep.Last.Format(time.RFC3339Nano), rep.Last.Sub(rep.First).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\npackets to the host: %d, accepted %d, dropped %d; from the host: %d evaluated, %d answers to dropped packets not sent; other frames: %d\n",
		rep.Packets, rep.Accepted, rep.Dropped, rep.Outgoing, rep.Suppress, rep.Other)

	fmt.Fprintln(w, "\nRULES (packets and bytes, as iptables -nvL / nft list ruleset would count them)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pkts\tbytes\t \tfamily\tchain\t#\trule\t")
	for _, r := range rep.Rules {
		if r.Packets == 0 {
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t \t%s\t%s\t%d\t%s\t\n", r.Packets, humanBytes(r.Bytes), r.Family, r.Chain, r.Position, ruleSummary(r.Text))
	}
	tw.Flush()
	zero := 0
	for _, r := range rep.Rules {
		if r.Packets == 0 {
			zero++
		}
	}
	fmt.Fprintf(w, "(%d rules matched nothing; --json lists every rule)\n", zero)
	for _, pc := range rep.Policies {
		if pc.Packets > 0 {
			fmt.Fprintf(w, "policy %s of %s: %d packets, %s\n", pc.Policy, pc.Chain, pc.Packets, humanBytes(pc.Bytes))
		}
	}

	fmt.Fprintln(w, "\nSOURCES")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "address\tpackets\taccepted\tdropped\tSIP req\tSIP ok\tlists\tfirst drop\tuser-agents")
	for _, s := range rep.Sources {
		var lists []string
		for _, l := range s.Lists {
			lists = append(lists, l.List+"@"+l.At.Format("15:04:05.000"))
		}
		drop := "-"
		if s.FirstDrop != nil {
			drop = fmt.Sprintf("%s #%d (%s packet %d)", s.FirstDrop.Chain, s.FirstDrop.Position, s.FirstDrop.File, s.FirstDrop.Packet)
			if s.FirstDrop.Position == 0 {
				drop = s.FirstDrop.Chain + " policy"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Addr, s.Packets, s.Accepted, s.Dropped, s.SIPRequests, s.SIPAccepted,
			dash(strings.Join(lists, " ")), drop, dash(strings.Join(s.UserAgents, "; ")))
	}
	tw.Flush()

	t := rep.Totals
	fmt.Fprintf(w, "\nscan attempts thwarted: %d\nsources banned: %d\nphones admitted: %d\n", t.ScanAttemptsThwarted, t.SourcesBanned, t.PhonesAdmitted)
	if len(t.LockedOut) == 0 {
		fmt.Fprintln(w, "locked-out phones: none (no source that presented the hostname had a request dropped)")
	} else {
		fmt.Fprintln(w, "LOCKED-OUT PHONES (sent a REGISTER with the hostname, still had requests dropped):")
		for _, a := range t.LockedOut {
			s := rep.SourceOf(a)
			fmt.Fprintf(w, "  %s: %d of %d SIP requests dropped", a, s.SIPRequests-s.SIPAccepted, s.SIPRequests)
			if s.FirstDrop != nil {
				fmt.Fprintf(w, ", first by %s #%d: %s", s.FirstDrop.Chain, s.FirstDrop.Position, ruleSummary(s.FirstDrop.Text))
			}
			fmt.Fprintln(w)
		}
	}
	_ = prog
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ruleSummary shortens a rendered rule for the table: the comment when
// there is one, else the rule.
func ruleSummary(text string) string {
	for _, key := range []string{`--comment "`, `comment "`} {
		if i := strings.LastIndex(text, key); i >= 0 {
			rest := text[i+len(key):]
			if j := strings.Index(rest, `"`); j >= 0 {
				return rest[:j]
			}
		}
	}
	return text
}

func humanBytes(n uint64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}
