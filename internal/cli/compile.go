package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

func runCompile(e *env) int {
	fs := newFlags(e, "compile", "[-c FILE] [--backend iptables|nftables] [--profile sipwall|article] [-o DIR] [--force] [--diff [--json]]")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	backendName := fs.String("backend", "iptables", "ruleset `backend`: iptables or nftables")
	profile := fs.String("profile", "sipwall", "sipwall, or article for the article's own ruleset")
	outDir := fs.String("o", "", "write the ruleset files into `dir` instead of stdout")
	force := fs.Bool("force", false, "compile even when the policy has lint errors (such as an SSH lockout)")
	showDiff := fs.Bool("diff", false, "show what differs from the applied ruleset (rules, sets, ports and the ruleset diff), with its backend unless --backend is given")
	asJSON := fs.Bool("json", false, "with --diff: print JSON")
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall compile: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	name, err := backend.Parse(*backendName)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall compile: --backend: %v\n", err)
		return exitUsage
	}
	if *asJSON && !*showDiff {
		fmt.Fprintln(e.stderr, "sipwall compile: --json goes with --diff (the ruleset itself is text)")
		return exitUsage
	}
	var st *apply.State
	if *showDiff {
		if *outDir != "" || *profile != "sipwall" {
			fmt.Fprintln(e.stderr, "sipwall compile: --diff compares with the applied ruleset: it goes with neither -o nor --profile")
			return exitUsage
		}
		if st, err = apply.LoadState(*stateDir); err != nil {
			fmt.Fprintf(e.stderr, "sipwall compile: %v\n", err)
			return exitFailure
		}
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "backend" })
		if st.Current != nil && !explicit {
			name = st.Current.Backend
		}
	}
	p, ok := loadPolicy(e, *file)
	if !ok {
		return exitUsage
	}
	if !lintGate(e, p, *force, "sipwall compile: refusing to compile a policy with errors (see above; --force overrides)") {
		return exitFailure
	}
	rs, err := compilePolicy(e.ctx, p, name, *profile)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall compile: %v\n", err)
		return exitUsage
	}
	files, err := pure(e.ctx, func() (map[string]string, error) { return render.Files(rs, name) })
	if e.ctx.Err() != nil {
		return exitFailure // interrupted: nothing written
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall compile: %v\n", err)
		return exitFailure
	}
	if *showDiff {
		gen, err := apply.NewGeneration(name, rs, files)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall compile: %v\n", err)
			return exitFailure
		}
		gen.Open = exposure(p)
		d := diffGenerations(st.Current, gen)
		if *asJSON {
			printJSON(e.stdout, d)
		} else {
			printDiff(e.stdout, d, true)
		}
		return exitOK
	}
	order := []string{"sipwall.nft"}
	if name == backend.IPTables {
		order = []string{"rules.v4", "rules.v6", "ipsets"}
	}
	for _, n := range rs.Notes {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	if *outDir != "" {
		if err := writeFiles(*outDir, order, files); err != nil {
			fmt.Fprintf(e.stderr, "sipwall compile: %v\n", err)
			return exitFailure
		}
		for _, n := range order {
			if files[n] != "" {
				fmt.Fprintf(e.stderr, "wrote %s\n", filepath.Join(*outDir, n))
			}
		}
		return exitOK
	}
	if len(order) == 1 {
		fmt.Fprint(e.stdout, files[order[0]])
		return exitOK
	}
	for _, n := range order {
		if files[n] == "" {
			continue
		}
		fmt.Fprintf(e.stdout, "### %s (%s)\n%s\n", n, loaders[n], files[n])
	}
	return exitOK
}

var loaders = map[string]string{
	"rules.v4": "iptables-restore", "rules.v6": "ip6tables-restore", "ipsets": "ipset restore; load it first",
}

// writeFiles writes every non-empty file atomically (temporary file, fsync,
// rename) after all were rendered, so a failure leaves old files in place.
func writeFiles(dir string, order []string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, n := range order {
		if files[n] == "" {
			continue
		}
		if err := writeAtomic(filepath.Join(dir, n), []byte(files[n]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic replaces path with data: temp file, fsync, rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
