package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipwall/sipwall/internal/guard"
	"github.com/sipwall/sipwall/internal/guard/jail"
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

func runGuard(e *env) int {
	fs := newFlags(e, "guard", "--scan-log FILE... [--json] [--matches] [--findtime 10m] [--maxretry 5] [--bantime 1h] [--never-ban PREFIX,...]")
	scanLog := fs.Bool("scan-log", false, "analyse the log FILEs offline: matches and per-address verdicts; the firewall is not touched")
	asJSON := fs.Bool("json", false, "print the report as JSON (see docs/guard.md)")
	listMatches := fs.Bool("matches", false, "list every matched line (always in --json)")
	findTime := fs.Duration("findtime", jail.DefaultFindTime, "window in which failures are counted")
	maxRetry := fs.Int("maxretry", jail.DefaultMaxRetry, "failures within findtime that ban an address")
	banTime := fs.Duration("bantime", jail.DefaultBanTime, "duration of a first ban")
	banFactor := fs.Int("bantime-factor", jail.DefaultBanFactor, "each repeat ban within a week lasts this many times longer (1: no escalation)")
	maxBanTime := fs.Duration("max-bantime", jail.DefaultMaxBanTime, "longest ban")
	maxLine := fs.Int("max-line", 0, "longest line read, in bytes; longer lines are skipped and counted (default 65536)")
	ignoreSelf := fs.Bool("ignore-self", true, "never ban this host's own addresses (turn off when the logs come from another host)")
	var neverBan prefixList
	fs.Var(&neverBan, "never-ban", "addresses or prefixes never banned (comma-separated, repeatable); loopback and this host's addresses never are")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if !*scanLog {
		fmt.Fprintln(e.stderr, "sipwall guard: live mode not available yet: use --scan-log FILE... to analyse logs")
		return exitFailure
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "sipwall guard: --scan-log needs at least one log FILE")
		fs.Usage()
		return exitUsage
	}
	if *maxRetry < 1 || *findTime <= 0 || *banTime <= 0 || *banFactor < 1 || *maxBanTime < *banTime {
		fmt.Fprintln(e.stderr, "sipwall guard: --maxretry must be at least 1, --findtime and --bantime positive, --bantime-factor at least 1, --max-bantime at least --bantime")
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

	var self []netip.Addr
	if *ignoreSelf {
		self = ownAddresses()
	}
	opts := guard.Options{
		MaxLine:     *maxLine,
		KeepMatches: *asJSON || *listMatches,
		Jail: jail.Config{
			FindTime: *findTime, MaxRetry: *maxRetry, BanTime: *banTime,
			BanFactor: *banFactor, MaxBanTime: *maxBanTime,
			NeverBan: neverBan, Self: self,
		},
	}
	rep, err := guard.Scan(e.ctx, inputs, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(e.stderr, "sipwall guard: writing the report: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if err := printScan(e.stdout, rep, *listMatches); err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: writing the report: %v\n", err)
		return exitFailure
	}
	return exitOK
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

func printScan(w io.Writer, rep *guard.Report, listMatches bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	th := rep.Thresholds
	fmt.Fprintf(tw, "Thresholds: %d failures within %s ban for %s (repeat bans x%d, at most %s)\n\n",
		th.MaxRetry, th.FindTime, th.BanTime, th.BanFactor, th.MaxBanTime)

	fmt.Fprintln(tw, "FILE\tLINES\tMATCHED\tUNMATCHED CANDIDATES\tOVERLONG")
	for _, f := range rep.Files {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", f.File, f.Lines, f.Matched, f.UnmatchedCandidate, f.Overlong)
	}
	if len(rep.Files) > 1 {
		fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\n", rep.Lines, rep.Matched, rep.UnmatchedCandidate, rep.Overlong)
	}

	kinds := rep.Events
	if len(kinds) > 0 {
		names := make([]string, 0, len(kinds))
		for k := range kinds {
			names = append(names, k)
		}
		sort.Slice(names, func(i, j int) bool {
			if kinds[names[i]] != kinds[names[j]] {
				return kinds[names[i]] > kinds[names[j]]
			}
			return names[i] < names[j]
		})
		fmt.Fprintln(tw, "\nEVENT\tMATCHES")
		for _, k := range names {
			fmt.Fprintf(tw, "%s\t%d\n", k, kinds[k])
		}
	}

	if listMatches && len(rep.Matches) > 0 {
		fmt.Fprintln(tw, "\nFILE:LINE\tEVENT\tADDRESS\tTIME")
		for _, m := range rep.Matches {
			ts := "-"
			if !m.Time.IsZero() {
				ts = m.Time.Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\n", m.File, m.Line, m.Event, m.Addr, ts)
		}
	}

	if len(rep.Addresses) > 0 {
		fmt.Fprintln(tw, "\nADDRESS\tFAILURES\tVERDICT\tBANNED AT\tBANS\tDETAIL")
		for _, a := range rep.Addresses {
			at, detail := "-", a.Reason
			if !a.BannedAt.IsZero() {
				at = a.BannedAt.Format(time.DateTime)
				detail = "last ban " + a.BanTime
			}
			bans := "-"
			if a.Bans > 0 {
				bans = fmt.Sprint(a.Bans)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", a.Addr, a.Failures, a.Verdict, at, bans, detail)
		}
	}

	if len(rep.Candidates) > 0 {
		fmt.Fprintln(tw, "\nNOT ATTRIBUTED\tEVENT\tREASON")
		for _, c := range rep.Candidates {
			ev := c.Event
			if ev == "" {
				ev = "-"
			}
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\n", c.File, c.Line, ev, c.Reason)
		}
		if len(rep.Candidates) < rep.UnmatchedCandidate {
			fmt.Fprintf(tw, "… and %d more\n", rep.UnmatchedCandidate-len(rep.Candidates))
		}
	}
	return tw.Flush()
}
