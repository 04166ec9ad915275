package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/policy"
	"golang.org/x/sys/unix"
)

// openStore opens the lists of the applied ruleset; it prints the error
// and returns false when there is none.
func openStore(e *env, cmd, stateDir string) (*lists.Store, bool) {
	s, err := lists.Open(e.ctx, stateDir, backend.Host{})
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall %s: %v\n", cmd, err)
		return nil, false
	}
	return s, true
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type jsonEntry struct {
	List      string     `json:"list"`
	Addr      string     `json:"addr"`
	ExpiresIn int64      `json:"expires_in,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

// listFlag collects --list values (repeated or comma-separated).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

// defaultLimit is how many entries of each list lists shows when the
// lists are larger than that, unless --limit or --all says otherwise.
const defaultLimit = 20

func runLists(e *env) int {
	fs := newFlags(e, "lists", "[--list LIST] [--addr ADDR|CIDR] [--reason TEXT] [--since DURATION] [--limit N|--all] [--json] [LIST...]")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON (every entry selected, unless --limit)")
	var only listFlag
	fs.Var(&only, "list", "only this `list` (repeat, or comma-separated; the same as naming it as an argument)")
	addrS := fs.String("addr", "", "only entries that hold this `address` or network, or lie inside it")
	reason := fs.String("reason", "", "only entries whose reason holds this `text` (any case)")
	sinceS := fs.String("since", "", "only entries made within this `duration` (like 10m, 1h, 7d)")
	limit := fs.Int("limit", 0, fmt.Sprintf("show the first `N` entries of each list (default %d when there are more)", defaultLimit))
	all := fs.Bool("all", false, "show every entry however many")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	q := lists.Query{Lists: append(only, fs.Args()...), Reason: *reason}
	for _, l := range q.Lists {
		if err := lists.CheckList(l); err != nil {
			fmt.Fprintf(e.stderr, "sipwall lists: %v\n", err)
			return exitUsage
		}
	}
	if *addrS != "" {
		p, err := policy.ParsePrefix(*addrS)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall lists: --addr: %v\n", err)
			return exitUsage
		}
		q.Addr = p
	}
	if *sinceS != "" {
		d, err := policy.ParseDuration(*sinceS)
		if err != nil || d <= 0 {
			fmt.Fprintf(e.stderr, "sipwall lists: --since: %q is not a duration (like 10m, 1h or 7d)\n", *sinceS)
			return exitUsage
		}
		q.Since = d
	}
	if *limit < 0 || (*limit > 0 && *all) {
		fmt.Fprintln(e.stderr, "sipwall lists: --limit takes a positive number, and not with --all")
		return exitUsage
	}
	s, ok := openStore(e, "lists", *stateDir)
	if !ok {
		return exitFailure
	}
	entries, err := s.Find(e.ctx, q)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall lists: %v\n", err)
		return exitFailure
	}
	shown := q.Lists
	if len(shown) == 0 {
		shown = s.Lists()
	}
	count := map[string]int{}
	for _, en := range entries {
		count[en.List]++
	}
	per := *limit
	if per == 0 && !*all && !*asJSON && len(entries) > defaultLimit {
		per = defaultLimit
	}
	if *asJSON {
		out := make([]jsonEntry, 0, len(entries))
		n := map[string]int{}
		for _, en := range entries {
			if per > 0 && n[en.List] >= per {
				continue
			}
			n[en.List]++
			j := jsonEntry{List: en.List, Addr: en.Addr(), Comment: en.Comment, Since: timePtr(en.Since)}
			if en.Remaining > 0 {
				j.ExpiresIn = int64(en.Remaining / time.Second)
				j.ExpiresAt = timePtr(en.Until.UTC())
			}
			out = append(out, j)
		}
		counts := map[string]int{}
		for _, l := range shown {
			counts[l] = count[l]
		}
		printJSON(e.stdout, map[string]any{"backend": s.Name(), "counts": counts, "entries": out})
		return exitOK
	}
	now := time.Now()
	w := bufio.NewWriterSize(e.stdout, 64*1024)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	i := 0
	for _, l := range shown {
		fmt.Fprintf(tw, "%s (%d): %s\n", l, count[l], lists.About(l))
		for ; i < len(entries) && entries[i].List != l; i++ {
		}
		n := 0
		for ; i < len(entries) && entries[i].List == l; i++ {
			if per > 0 && n == per {
				fmt.Fprintf(tw, "  … and %d more (--list %s --all shows them, --addr/--reason/--since select)\n", count[l]-n, l)
				for i < len(entries) && entries[i].List == l {
					i++
				}
				break
			}
			n++
			en := &entries[i]
			left := "forever"
			if en.Remaining > 0 {
				left = policy.Duration{Duration: en.Remaining}.String()
			}
			since := "-"
			if !en.Since.IsZero() {
				since = ago(now.Sub(en.Since)) + " ago"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", en.Addr(), left, since, en.Comment)
		}
		i = 0
	}
	tw.Flush()
	w.Flush()
	return exitOK
}

// readItems collects the addresses of the arguments and of --from-file
// (one a line; "#" starts a comment, which becomes the entry's reason when
// no --reason is given). Every bad line is reported, with file and line.
func readItems(e *env, cmd, list string, args []string, file string) ([]netip.Prefix, []string, bool) {
	var out []netip.Prefix
	var comments []string
	var problems []string
	for _, a := range args {
		p, err := lists.ParseItem(list, a)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, p)
		comments = append(comments, "")
	}
	if file != "" {
		var r io.Reader
		name := file
		if file == "-" {
			r, name = e.stdin, "stdin"
		} else {
			f, err := os.Open(file)
			if err != nil {
				fmt.Fprintf(e.stderr, "sipwall %s: --from-file: %v\n", cmd, err)
				return nil, nil, false
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for n := 1; sc.Scan(); n++ {
			line, comment, _ := strings.Cut(sc.Text(), "#")
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			p, err := lists.ParseItem(list, line)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: %v", name, n, err))
				continue
			}
			out = append(out, p)
			comments = append(comments, strings.TrimSpace(comment))
		}
		if err := sc.Err(); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(problems) > 0 {
		for i, p := range problems {
			if i == 20 {
				fmt.Fprintf(e.stderr, "sipwall %s: … and %d more\n", cmd, len(problems)-20)
				break
			}
			fmt.Fprintf(e.stderr, "sipwall %s: %s\n", cmd, p)
		}
		fmt.Fprintf(e.stderr, "sipwall %s: nothing changed\n", cmd)
		return nil, nil, false
	}
	if len(out) == 0 {
		fmt.Fprintf(e.stderr, "sipwall %s: no address given\n", cmd)
		return nil, nil, false
	}
	return out, comments, true
}

// checkReason refuses reasons the kernel cannot store as a comment.
func checkReason(s string) error {
	if len(s) > 100 {
		return fmt.Errorf("%d bytes; at most 100", len(s))
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q holds a control character", s)
		}
	}
	return nil
}

// addFlags are the flags ban and allow share.
type addFlags struct {
	forS, reason, file, stateDir *string
	asJSON, force                *bool
}

func newAddFlags(fs *flag.FlagSet, what string) addFlags {
	f := addFlags{
		forS:     fs.String("for", "", "how long the "+what+" lasts, like 30m, 12h or 7d (default: until removed)"),
		reason:   fs.String("reason", "", "why, stored with the entry (at most 100 bytes)"),
		file:     fs.String("from-file", "", "read addresses from `file`, one a line (- for stdin; # starts a comment)"),
		stateDir: stateDirFlag(fs),
		asJSON:   fs.Bool("json", false, "print the result as JSON"),
	}
	return f
}

func runBan(e *env) int {
	fs := newFlags(e, "ban", "[--for DURATION] [--reason TEXT] [--from-file FILE] [--force] [--json] ADDR|CIDR...")
	f := newAddFlags(fs, "ban")
	f.force = fs.Bool("force", false, "ban even the host's own addresses, the SSH client's, trusted and allowed networks")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	return addCommand(e, "ban", compile.SetBanned, f, fs.Args())
}

// banSafety returns why banning p would cut off the host itself, the
// SSH session sipwall runs in, or sources the policy or the allowed list
// trusts.
func banSafety(e *env, s *lists.Store, stateDir string, prefixes []netip.Prefix) []string {
	type guarded struct {
		p   netip.Prefix
		why string
	}
	var keep []guarded
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ip = ip.Unmap()
					keep = append(keep, guarded{netip.PrefixFrom(ip, ip.BitLen()), "an address of this host"})
				}
			}
		}
	}
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) > 0 {
		if ip, err := netip.ParseAddr(f[0]); err == nil {
			ip = ip.Unmap()
			keep = append(keep, guarded{netip.PrefixFrom(ip, ip.BitLen()), "the address of this SSH session's client (SSH_CONNECTION)"})
		}
	}
	if st, err := apply.LoadState(stateDir); err == nil && st.Current != nil {
		if nets, err := trustedNets(st.Current.PolicyFile); err == nil {
			for _, n := range nets {
				what := "trusted.sip"
				if n.all {
					what = "trusted.all"
				}
				keep = append(keep, guarded{n.Prefix, fmt.Sprintf("trusted by the applied policy (%s %s)", what, lists.FormatPrefix(n.Prefix))})
			}
		}
	}
	if allowed, err := s.List(e.ctx, compile.SetAllowed); err == nil {
		for _, a := range allowed {
			keep = append(keep, guarded{a.Prefix, fmt.Sprintf("in the allowed list (%s)", a.Addr())})
		}
	}
	var problems []string
	for _, p := range prefixes {
		for _, g := range keep {
			if !lists.Overlaps(p, g.p) {
				continue
			}
			what := lists.FormatPrefix(p)
			if p.Bits() < g.p.Bits() {
				what = fmt.Sprintf("%s holds %s, which is", what, lists.FormatPrefix(g.p))
			} else {
				what += " is"
			}
			problems = append(problems, fmt.Sprintf("%s %s", what, g.why))
		}
	}
	return problems
}

// shadows says which bans drop what allow admits: the ban wins.
func shadows(e *env, s *lists.Store, prefixes []netip.Prefix) []string {
	var banLists []string
	for _, l := range s.Lists() {
		if l != compile.SetAdmitted && l != compile.SetAllowed {
			banLists = append(banLists, l)
		}
	}
	var out []string
	for _, p := range prefixes {
		found, err := s.Find(e.ctx, lists.Query{Lists: banLists, Addr: p})
		if err != nil {
			continue
		}
		for _, f := range found {
			r, err := s.Why(e.ctx, f.Prefix)
			lift := "sipwall why " + f.Addr()
			if err == nil {
				for _, x := range r {
					if x.List == f.List && x.Prefix == f.Prefix {
						if x.Lift != "" {
							lift = x.Lift
						} else if x.LiftNote != "" {
							lift = x.LiftNote
						}
					}
				}
			}
			out = append(out, fmt.Sprintf("%s is shadowed by %s in the %s list: the ban drops it before it is admitted; to lift the ban: %s",
				lists.FormatPrefix(p), f.Addr(), f.List, lift))
		}
	}
	return out
}

func runAllow(e *env) int {
	fs := newFlags(e, "allow", "[--for DURATION] [--reason TEXT] [--from-file FILE] [--remove] ADDR|CIDR...")
	f := newAddFlags(fs, "admission")
	remove := fs.Bool("remove", false, "take the addresses out of the allowed list")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if *remove {
		if *f.forS != "" || *f.reason != "" {
			fmt.Fprintln(e.stderr, "sipwall allow: --remove takes no --for or --reason")
			return exitUsage
		}
		return removeCommand(e, "allow --remove", []string{compile.SetAllowed}, *f.file, *f.stateDir, fs.Args(), *f.asJSON)
	}
	return addCommand(e, "allow", compile.SetAllowed, f, fs.Args())
}

func addCommand(e *env, cmd, list string, f addFlags, args []string) int {
	var d time.Duration
	if *f.forS != "" {
		var err error
		if d, err = policy.ParseDuration(*f.forS); err != nil {
			fmt.Fprintf(e.stderr, "sipwall %s: --for: %v\n", cmd, err)
			return exitUsage
		}
		if d == 0 {
			fmt.Fprintf(e.stderr, "sipwall %s: --for: %q: leave --for out for no time limit\n", cmd, *f.forS)
			return exitUsage
		}
	}
	if err := checkReason(*f.reason); err != nil {
		fmt.Fprintf(e.stderr, "sipwall %s: --reason: %v\n", cmd, err)
		return exitUsage
	}
	prefixes, comments, ok := readItems(e, cmd, list, args, *f.file)
	if !ok {
		return exitUsage
	}
	// Limits that depend on the backend are checked before anything changes.
	st, err := apply.LoadState(*f.stateDir)
	if err == nil && st.Current != nil {
		if err := lists.CheckFor(st.Current.Backend, d); err != nil {
			fmt.Fprintf(e.stderr, "sipwall %s: --for: %v\n", cmd, err)
			return exitUsage
		}
	}
	s, ok := openStore(e, cmd, *f.stateDir)
	if !ok {
		return exitFailure
	}
	if list == compile.SetBanned && !*f.force {
		if problems := banSafety(e, s, *f.stateDir, prefixes); len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintf(e.stderr, "sipwall %s: %s\n", cmd, p)
			}
			fmt.Fprintf(e.stderr, "sipwall %s: refusing to ban it; nothing changed (--force bans anyway)\n", cmd)
			return exitFailure
		}
	}
	items := make([]lists.Item, len(prefixes))
	for i, p := range prefixes {
		c := *f.reason
		if c == "" {
			c = comments[i]
			if checkReason(c) != nil {
				c = ""
			}
		}
		items[i] = lists.Item{Prefix: p, For: d, Comment: c}
	}
	var res *lists.Result
	if list == compile.SetBanned {
		res, err = s.Ban(e.ctx, items)
	} else {
		res, err = s.Allow(e.ctx, items)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall %s: %v\n", cmd, err)
		return exitFailure
	}
	var shadowed []string
	if list == compile.SetAllowed {
		shadowed = shadows(e, s, prefixes)
	}
	how := "until removed"
	if d > 0 {
		how = "for " + policy.Duration{Duration: d}.String()
	}
	if *f.asJSON {
		out := map[string]any{"list": list, "added": res.Added, "for": int64(d / time.Second),
			"covered": nonNil(res.Covered), "kept": nonNil(res.Kept), "warnings": nonNil(res.Warnings)}
		if list == compile.SetBanned {
			out["flows_deleted"] = res.Flows
		} else {
			out["shadowed"] = nonNil(shadowed)
		}
		printJSON(e.stdout, out)
		return exitOK
	}
	for _, c := range res.Covered {
		fmt.Fprintf(e.stderr, "note: left out %s, in the same request\n", c)
	}
	for _, k := range res.Kept {
		fmt.Fprintf(e.stderr, "note: %s\n", k)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	for _, w := range shadowed {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	if list == compile.SetBanned {
		fmt.Fprintf(e.stdout, "banned %d %s %s; %d conntrack flows deleted\n", res.Added, plural(res.Added, "entry", "entries"), how, res.Flows)
	} else {
		fmt.Fprintf(e.stdout, "allowed %d %s %s\n", res.Added, plural(res.Added, "entry", "entries"), how)
	}
	return exitOK
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func runUnban(e *env) int {
	fs := newFlags(e, "unban", "[--from-file FILE] [--list LIST] [--reason TEXT] [--all] [--yes] [--json] [ADDR|CIDR...]")
	file := fs.String("from-file", "", "read addresses from `file`, one a line (- for stdin)")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var only listFlag
	fs.Var(&only, "list", "take entries out of this `list` only (without addresses: all of its entries)")
	reason := fs.String("reason", "", "take out every entry whose reason holds this `text` (any case)")
	all := fs.Bool("all", false, "take out every entry of the banned, scanners, trapped and answered lists")
	yes := fs.Bool("yes", false, "do not ask for confirmation (needed when not on a terminal)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	var from []string // nil: every ban list the applied ruleset has
	if len(only) > 0 {
		for _, l := range only {
			if err := lists.CheckList(l); err != nil {
				fmt.Fprintf(e.stderr, "sipwall unban: --list: %v\n", err)
				return exitUsage
			}
		}
		from = only
	}
	bulk := *all || *reason != "" || (len(only) > 0 && fs.NArg() == 0 && *file == "")
	if !bulk {
		return removeCommand(e, "unban", from, *file, *stateDir, fs.Args(), *asJSON)
	}
	if fs.NArg() > 0 || *file != "" {
		fmt.Fprintln(e.stderr, "sipwall unban: --all and --reason take no addresses")
		return exitUsage
	}
	if *all && *reason != "" {
		fmt.Fprintln(e.stderr, "sipwall unban: --all takes every entry; leave --reason out, or --all")
		return exitUsage
	}
	s, ok := openStore(e, "unban", *stateDir)
	if !ok {
		return exitFailure
	}
	if from == nil {
		from = s.BanLists()
	}
	for _, l := range from {
		if !hasList(s, l) {
			fmt.Fprintf(e.stderr, "sipwall unban: the applied ruleset has no %s list\n", l)
			return exitUsage
		}
	}
	what := "every entry of " + strings.Join(from, ", ")
	if *reason != "" {
		what = fmt.Sprintf("the entries of %s whose reason holds %q", strings.Join(from, ", "), *reason)
	}
	found, err := s.Find(e.ctx, lists.Query{Lists: from, Reason: *reason})
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall unban: %v\n", err)
		return exitFailure
	}
	if len(found) == 0 {
		fmt.Fprintf(e.stderr, "sipwall unban: no entry: %s is empty\n", what)
		return exitFailure
	}
	if !*yes {
		if !isTerminal(e.stdin) {
			fmt.Fprintf(e.stderr, "sipwall unban: this takes out %d %s (%s); add --yes to do it without a terminal; nothing changed\n",
				len(found), plural(len(found), "entry", "entries"), what)
			return exitUsage
		}
		fmt.Fprintf(e.stderr, "take out %d %s (%s)? [y/N] ", len(found), plural(len(found), "entry", "entries"), what)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stderr, "sipwall unban: nothing changed")
			return exitFailure
		}
	}
	entries := make([]lists.Entry, len(found))
	for i, f := range found {
		entries[i] = f.Entry
	}
	n, err := s.RemoveEntries(e.ctx, entries)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall unban: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		printJSON(e.stdout, map[string]any{"removed": n, "lists": from, "reason": *reason})
		return exitOK
	}
	fmt.Fprintf(e.stdout, "removed %d %s from %s\n", n, plural(n, "entry", "entries"), strings.Join(from, ", "))
	return exitOK
}

func hasList(s *lists.Store, l string) bool {
	for _, x := range s.Lists() {
		if x == l {
			return true
		}
	}
	return false
}

// isTerminal reports whether r is a terminal (unban asks there).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func removeCommand(e *env, cmd string, from []string, file, stateDir string, args []string, asJSON bool) int {
	// Networks are accepted here (the first list takes them); no lists
	// means every ban list the applied ruleset has.
	first := compile.SetBanned
	if len(from) > 0 {
		first = from[0]
	}
	prefixes, _, ok := readItems(e, cmd, first, args, file)
	if !ok {
		return exitUsage
	}
	s, ok := openStore(e, cmd, stateDir)
	if !ok {
		return exitFailure
	}
	if from == nil {
		from = s.BanLists()
	}
	res, err := s.Remove(e.ctx, from, prefixes)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall %s: %v\n", cmd, err)
		return exitFailure
	}
	if asJSON {
		printJSON(e.stdout, map[string]any{"removed": res.Removed, "lists": from, "warnings": nonNil(res.Warnings)})
		return exitOK
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "removed %d %s from %s\n", res.Removed, plural(res.Removed, "entry", "entries"), strings.Join(from, ", "))
	return exitOK
}

func runSave(e *env) int {
	fs := newFlags(e, "save", "[--file FILE]")
	stateDir := stateDirFlag(fs)
	file := fs.String("file", "", "the saved-lists `file` (default STATE-DIR/lists.json)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall save: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *file == "" {
		*file = lists.DefaultFile(*stateDir)
	}
	s, ok := openStore(e, "save", *stateDir)
	if !ok {
		return exitFailure
	}
	res, err := s.Save(e.ctx, *file)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall save: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		printJSON(e.stdout, map[string]any{"saved": res.Entries, "file": res.Path, "note": res.Note})
		return exitOK
	}
	if res.Note != "" {
		fmt.Fprintf(e.stderr, "warning: %s\n", res.Note)
	}
	fmt.Fprintf(e.stdout, "saved %d %s to %s\n", res.Entries, plural(res.Entries, "entry", "entries"), res.Path)
	return exitOK
}

func runRestore(e *env) int {
	fs := newFlags(e, "restore", "[--file FILE] [--boot]")
	stateDir := stateDirFlag(fs)
	file := fs.String("file", "", "the saved-lists `file` (default STATE-DIR/lists.json)")
	boot := fs.Bool("boot", false, "at boot: load the applied ruleset first, and succeed when nothing was ever saved")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall restore: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *file == "" {
		*file = lists.DefaultFile(*stateDir)
	}
	if *boot {
		if err := reinstall(e, *stateDir); err != nil {
			fmt.Fprintf(e.stderr, "sipwall restore: %v\n", err)
			return exitFailure
		}
	}
	s, ok := openStore(e, "restore", *stateDir)
	if !ok {
		return exitFailure
	}
	res, err := s.Restore(e.ctx, *file)
	if errors.Is(err, lists.ErrNothingSaved) && *boot {
		fmt.Fprintf(e.stdout, "no saved lists (%v): the lists start empty\n", err)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall restore: %v\n", err)
		return exitFailure
	}
	if res.FellBack != "" {
		fmt.Fprintf(e.stderr, "WARNING: %s\nWARNING: restored the PREVIOUS generation %s (saved %s) instead\n",
			res.FellBack, res.From, res.SavedAt.Format(time.RFC3339))
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "restored %d %s from %s (saved %s); %d expired since, %d left out\n",
		res.Restored, plural(res.Restored, "entry", "entries"), res.From, res.SavedAt.Format(time.RFC3339), res.Expired, res.Skipped)
	return exitOK
}

// reinstall loads the applied generation again (at boot the kernel holds
// nothing) without making it a new generation: the state's previous
// generation is kept for rollback.
func reinstall(e *env, stateDir string) error {
	gen, err := manager(stateDir).Reinstall(e.ctx)
	if err != nil {
		if errors.Is(err, apply.ErrNothingApplied) {
			return lists.ErrNothingApplied
		}
		return fmt.Errorf("load the applied ruleset: %w", err)
	}
	fmt.Fprintf(e.stdout, "loaded the applied %s ruleset (%s)\n", gen.Backend, gen.PolicyFile)
	return nil
}

func runStats(e *env) int {
	fs := newFlags(e, "stats", "[--json] [--html FILE]")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	htmlOut := fs.String("html", "", "also write the counters as one self-contained HTML `file`")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall stats: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	s, ok := openStore(e, "stats", *stateDir)
	if !ok {
		return exitFailure
	}
	st, err := s.Stats(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall stats: %v\n", err)
		return exitFailure
	}
	if *htmlOut != "" {
		if err := writeStatsHTML(*htmlOut, st); err != nil {
			fmt.Fprintf(e.stderr, "sipwall stats: --html: %v\n", err)
			return exitFailure
		}
	}
	if *asJSON {
		printJSON(e.stdout, st)
		return exitOK
	}
	if st.Note != "" {
		fmt.Fprintf(e.stderr, "sipwall stats: %s\n", st.Note)
	}
	fmt.Fprintf(e.stdout, "counters since the ruleset was loaded (%s):\n", st.Backend)
	for _, l := range st.Summary() {
		fmt.Fprintln(e.stdout, l)
	}
	return exitOK
}
