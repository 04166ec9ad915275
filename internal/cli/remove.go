package cli

import (
	"bufio"
	"fmt"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/lists"
)

// runRemove takes sipwall off the host: the lists are saved first, then
// sipwall's ruleset and sets are removed and the host's own base chain
// policies and tables are put back. Nothing else is stopped or changed.
func runRemove(e *env) int {
	fs := newFlags(e, "remove", "[--yes] [--json] [--file FILE]")
	stateDir := stateDirFlag(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	asJSON := fs.Bool("json", false, "print JSON")
	file := fs.String("file", "", "save the lists to this `file` first (default STATE-DIR/lists.json)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall remove: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	st, err := apply.LoadState(*stateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall remove: %v\n", err)
		return exitFailure
	}
	if st.Current == nil {
		fmt.Fprintln(e.stderr, "sipwall remove: nothing to remove: sipwall's ruleset is not applied; nothing changed")
		return exitFailure
	}
	if !*yes {
		fmt.Fprintf(e.stdout, "This removes sipwall's ruleset (%s, applied %s) and its sets; the host's own policies come back. Continue? [y/N] ",
			st.Current.Backend, st.Current.AppliedAt.UTC().Format(time.RFC3339))
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stderr, "sipwall remove: not confirmed (--yes skips the question); nothing changed")
			return exitFailure
		}
	}
	if *file == "" {
		*file = lists.DefaultFile(*stateDir)
	}
	s, ok := openStore(e, "remove", *stateDir)
	if !ok {
		fmt.Fprintln(e.stderr, "sipwall remove: the lists could not be read to save them; nothing changed")
		return exitFailure
	}
	saved, err := s.Save(e.ctx, *file)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall remove: saving the lists first: %v; nothing changed\n", err)
		return exitFailure
	}
	from, err := manager(*stateDir).Remove(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall remove: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		printJSON(e.stdout, map[string]any{"removed": from, "lists_saved": saved.Entries, "lists_file": saved.Path})
		return exitOK
	}
	fmt.Fprintf(e.stdout, "removed sipwall's %s ruleset and sets; the host's own policies and tables are back\n", from.Backend)
	fmt.Fprintf(e.stdout, "the lists (%d %s) are saved in %s: `sipwall apply` then `sipwall restore` brings them back\n",
		saved.Entries, plural(saved.Entries, "entry", "entries"), saved.Path)
	fmt.Fprintln(e.stdout, "nothing else was stopped: a running `sipwall guard` keeps running until you stop it")
	return exitOK
}
