// Package cli implements sipwall's subcommands: flag parsing, output (human
// tables and --json) and exit statuses. Each subcommand lives in a file of its
// own and is listed in the commands table below.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses shared by all subcommands.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and found a problem (or failed at run time)
	exitUsage   = 2 // bad input: flags, arguments, policy file
	// exitInterrupted: stopped by SIGINT or SIGTERM before it finished
	// (128 + SIGINT, as shells report it).
	exitInterrupted = 130
)

// env is what a subcommand may touch: its arguments and standard streams.
type env struct {
	ctx    context.Context
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// Set by newFlags, for help, manual pages and completions.
	flags    *flag.FlagSet
	synopsis string
}

type command struct {
	summary string
	run     func(e *env) int
}

// commands lists every subcommand. Each run function lives in the file named
// after the subcommand.
var commands = map[string]command{
	"compile":  {"print the ruleset compiled from the policy", runCompile},
	"check":    {"validate and lint the policy", runCheck},
	"init":     {"write a commented policy for this host", runInit},
	"apply":    {"load the ruleset safely (one transaction, commit-confirm, lists kept)", runApply},
	"confirm":  {"keep a ruleset applied with commit-confirm", runConfirm},
	"rollback": {"restore the previous ruleset", runRollback},
	"status":   {"what is applied, pending confirmation, drift, rollbacks", runStatus},
	"remove":   {"take sipwall off the host (lists saved, the host's policies back)", runRemove},
	"audit":    {"check the PBX host's configuration against the policy", runAudit},
	"guard":    {"ban from Asterisk security events (--scan-log analyses logs offline)", runGuard},
	"lab":      {"run real scanners and phones against a real SIP server, with and without sipwall", runLab},
	"lists":    {"show the lists (banned, scanners, trapped, admitted, allowed)", runLists},
	"why":      {"why an address is listed: since when, until when, by whom, the rule, how to lift it", runWhy},
	"ban":      {"ban addresses or networks from every port (and end their flows)", runBan},
	"unban":    {"take addresses out of the banned, scanners and trapped lists", runUnban},
	"allow":    {"admit addresses to SIP without the knock (--remove to undo)", runAllow},
	"save":     {"save the lists with their remaining timeouts", runSave},
	"restore":  {"put saved lists back (--boot: load the ruleset first)", runRestore},
	"stats":    {"the ruleset's counters, explained", runStats},
	"replay":   {"evaluate the compiled ruleset on captured traffic", runReplay},
	"crowdsec": {"the CrowdSec LAPI and feeds guard shares bans with (status)", runCrowdSec},
}

// Main runs sipwall with args (without the program name) and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sipwall: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	code := cmd.run(&env{ctx: ctx, args: args[1:], stdin: stdin, stdout: stdout, stderr: stderr})
	if code != exitOK && ctx.Err() != nil {
		fmt.Fprintf(stderr, "sipwall %s: interrupted\n", args[0])
		return exitInterrupted
	}
	return code
}

// pure runs f, a computation that changes nothing outside itself (parsing,
// linting, compiling, rendering), and returns its result, or ctx's error as
// soon as ctx is done: the command stops when told however long f would
// take, and f's result is dropped.
func pure[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sipwall COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sipwall help COMMAND' for a command's flags; 'sipwall --version' for the version.")
}

// newFlags returns a flag set for a subcommand that reports errors on e.stderr.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { printUsage(e.stderr, name, synopsis, fs) }
	e.flags, e.synopsis = fs, synopsis
	return fs
}

// parseFlags parses e.args; it returns false (and the exit status to use)
// when parsing failed or help was asked for.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// interleave moves flags that follow positional arguments in front of them,
// so "sipwall replay a.pcap --json" works like "sipwall replay --json a.pcap".
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(flags, pos...)
}
