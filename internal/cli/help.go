package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// internalPrefix starts the usage text of flags that only sipwall itself
// passes (the commit-confirm watchdog's): they are kept out of -h, the
// manual pages and the completions.
const internalPrefix = "internal:"

// summaryOf returns a command's summary for its -h. printUsage cannot read
// the commands table itself: the table's own functions call printUsage, and
// Go refuses such an initialization cycle; init sets it.
var summaryOf func(name string) string

func init() {
	commands["help"] = command{"print a command's usage and flags (sipwall help COMMAND)", runHelp}
	summaryOf = func(name string) string { return commands[name].summary }
}

// flagDoc is one flag as the help, the manual pages and the completions show it.
type flagDoc struct {
	name    string // without dashes
	arg     string // the value's placeholder; empty for a boolean flag
	usage   string
	def     string // the default when it says something
	boolean bool
}

// dashed is the flag as the user types it: -c, --backend.
func (d flagDoc) dashed() string {
	if len(d.name) == 1 {
		return "-" + d.name
	}
	return "--" + d.name
}

// flagDocs returns the flags of fs that a user may give, sorted by name.
func flagDocs(fs *flag.FlagSet, synopsis string) []flagDoc {
	var docs []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, internalPrefix) {
			return
		}
		d := flagDoc{name: f.Name}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			d.boolean = true
		}
		// A back-quoted word names the flag's value (`file`); back quotes
		// around words with a space are a quotation, not a name.
		name, usage := flag.UnquoteUsage(f)
		for strings.Contains(name, " ") {
			u := strings.Replace(strings.Replace(f.Usage, "`", "'", 1), "`", "'", 1)
			f = &flag.Flag{Name: f.Name, Value: f.Value, Usage: u, DefValue: f.DefValue}
			name, usage = flag.UnquoteUsage(f)
		}
		if !d.boolean {
			// Go names an unnamed value by its type; the synopsis
			// usually has a better name (--for DURATION).
			if w := synopsisArg(synopsis, f.Name); w != "" && !strings.Contains(f.Usage, "`") {
				name = w
			}
			d.arg = name
			if !strings.Contains(name, "|") {
				d.arg = strings.ToUpper(name)
			}
		}
		d.usage = usage
		switch f.DefValue {
		case "", "false", "0", "0s", "[]":
		default:
			d.def = f.DefValue
		}
		docs = append(docs, d)
	})
	sort.Slice(docs, func(i, j int) bool { return docs[i].name < docs[j].name })
	return docs
}

// synopsisArg returns the word that follows -name or --name in a synopsis
// ("[--for DURATION]" gives DURATION), or "".
func synopsisArg(synopsis, name string) string {
	fields := strings.FieldsFunc(synopsis, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '[' || r == ']' || r == '='
	})
	for i, f := range fields {
		if (f == "-"+name || f == "--"+name) && i+1 < len(fields) {
			w := strings.TrimRight(fields[i+1], ".")
			if w != "" && !strings.HasPrefix(w, "-") && (strings.ToUpper(w) == w || strings.Contains(w, "|")) {
				return w
			}
		}
	}
	return ""
}

// printUsage writes a command's usage line and its flags, like flag's
// PrintDefaults but with the internal flags left out.
func printUsage(w io.Writer, name, synopsis string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: sipwall %s %s\n", name, synopsis)
	if s := summaryOf(name); s != "" {
		fmt.Fprintf(w, "\n%s.\n", capitalize(s))
	}
	docs := flagDocs(fs, synopsis)
	if len(docs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	for _, d := range docs {
		head := "  " + d.dashed()
		if d.arg != "" {
			head += " " + d.arg
		}
		text := d.usage
		if d.def != "" {
			text += fmt.Sprintf(" (default %s)", d.def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", head, strings.ReplaceAll(text, "\n", "\n    \t"))
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cmdDoc is what a command says about itself: its synopsis and flags.
type cmdDoc struct {
	name     string
	summary  string
	synopsis string
	flags    []flagDoc
}

// describe asks a command for its flags by running it with -h, which every
// command answers after declaring its flags and before doing anything.
func describe(name string) cmdDoc {
	c := commands[name]
	e := &env{args: []string{"-h"}, stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	c.run(e)
	d := cmdDoc{name: name, summary: c.summary, synopsis: e.synopsis}
	if e.flags != nil {
		d.flags = flagDocs(e.flags, e.synopsis)
	}
	return d
}

// commandNames returns the subcommands in alphabetical order.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runHelp prints the usage of the command it names, or the general usage.
func runHelp(e *env) int {
	fs := newFlags(e, "help", "[COMMAND]")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		usage(e.stdout)
		return exitOK
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(e.stderr, "sipwall: help takes one command name")
		return exitUsage
	}
	name := fs.Arg(0)
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "sipwall: help: unknown command %q\n", name)
		usage(e.stderr)
		return exitUsage
	}
	// The command prints its own usage on -h to its stderr; here it is
	// the answer, so it goes to stdout.
	return c.run(&env{ctx: e.ctx, args: []string{"-h"}, stdin: e.stdin, stdout: e.stdout, stderr: e.stdout})
}
