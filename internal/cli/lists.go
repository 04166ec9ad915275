package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	Comment   string     `json:"comment,omitempty"`
}

func runLists(e *env) int {
	fs := newFlags(e, "lists", "[--json] [LIST...]")
	stateDir := stateDirFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	for _, l := range fs.Args() {
		if err := lists.CheckList(l); err != nil {
			fmt.Fprintf(e.stderr, "sipwall lists: %v\n", err)
			return exitUsage
		}
	}
	s, ok := openStore(e, "lists", *stateDir)
	if !ok {
		return exitFailure
	}
	entries, err := s.List(e.ctx, fs.Args()...)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall lists: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		now := time.Now().UTC().Truncate(time.Second)
		out := make([]jsonEntry, 0, len(entries))
		for _, en := range entries {
			j := jsonEntry{List: en.List, Addr: en.Addr(), Comment: en.Comment}
			if en.Remaining > 0 {
				j.ExpiresIn = int64(en.Remaining / time.Second)
				t := now.Add(en.Remaining)
				j.ExpiresAt = &t
			}
			out = append(out, j)
		}
		printJSON(e.stdout, map[string]any{"backend": s.Name(), "entries": out})
		return exitOK
	}
	shown := fs.Args()
	if len(shown) == 0 {
		shown = s.Lists()
	}
	count := map[string]int{}
	for _, en := range entries {
		count[en.List]++
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, l := range shown {
		fmt.Fprintf(tw, "%s (%d): %s\n", l, count[l], lists.About(l))
		for _, en := range entries {
			if en.List != l {
				continue
			}
			left := "forever"
			if en.Remaining > 0 {
				left = policy.Duration{Duration: en.Remaining}.String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", en.Addr(), left, en.Comment)
		}
	}
	tw.Flush()
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
}

func newAddFlags(fs *flag.FlagSet, what string) addFlags {
	return addFlags{
		forS:     fs.String("for", "", "how long the "+what+" lasts, like 30m, 12h or 7d (default: until removed)"),
		reason:   fs.String("reason", "", "why, stored with the entry (at most 100 bytes)"),
		file:     fs.String("from-file", "", "read addresses from `file`, one a line (- for stdin; # starts a comment)"),
		stateDir: stateDirFlag(fs),
	}
}

func runBan(e *env) int {
	fs := newFlags(e, "ban", "[--for DURATION] [--reason TEXT] [--from-file FILE] ADDR|CIDR...")
	f := newAddFlags(fs, "ban")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	return addCommand(e, "ban", compile.SetBanned, f, fs.Args())
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
		return removeCommand(e, "allow --remove", []string{compile.SetAllowed}, *f.file, *f.stateDir, fs.Args())
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
	for _, c := range res.Covered {
		fmt.Fprintf(e.stderr, "note: left out %s, in the same request\n", c)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	how := "until removed"
	if d > 0 {
		how = "for " + policy.Duration{Duration: d}.String()
	}
	if list == compile.SetBanned {
		fmt.Fprintf(e.stdout, "banned %d %s %s; %d conntrack flows deleted\n", res.Added, plural(res.Added, "entry", "entries"), how, res.Flows)
	} else {
		fmt.Fprintf(e.stdout, "allowed %d %s %s\n", res.Added, plural(res.Added, "entry", "entries"), how)
	}
	return exitOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func runUnban(e *env) int {
	fs := newFlags(e, "unban", "[--from-file FILE] ADDR|CIDR...")
	file := fs.String("from-file", "", "read addresses from `file`, one a line (- for stdin)")
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	return removeCommand(e, "unban", []string{compile.SetBanned, compile.SetScanners, compile.SetTrapped}, *file, *stateDir, fs.Args())
}

func removeCommand(e *env, cmd string, from []string, file, stateDir string, args []string) int {
	// Networks are accepted here (the first list takes them).
	prefixes, _, ok := readItems(e, cmd, from[0], args, file)
	if !ok {
		return exitUsage
	}
	s, ok := openStore(e, cmd, stateDir)
	if !ok {
		return exitFailure
	}
	res, err := s.Remove(e.ctx, from, prefixes)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall %s: %v\n", cmd, err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "removed %d %s from %s\n", res.Removed, plural(res.Removed, "entry", "entries"), strings.Join(from, ", "))
	return exitOK
}

func runSave(e *env) int {
	fs := newFlags(e, "save", "[--file FILE]")
	stateDir := stateDirFlag(fs)
	file := fs.String("file", "", "the saved-lists `file` (default STATE-DIR/lists.json)")
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
