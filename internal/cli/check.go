package cli

import (
	"encoding/json"
	"fmt"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

func runCheck(e *env) int {
	fs := newFlags(e, "check", "[-c FILE] [--force] [--json]")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	force := fs.Bool("force", false, "accept lint errors (an SSH lockout) as warnings")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall check: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	p, ok := loadPolicy(e, *file)
	if !ok {
		return exitUsage
	}
	findings, err := pure(e.ctx, func() ([]policy.Finding, error) { return p.Lint(hostFacts()), nil })
	if err != nil {
		return exitFailure // interrupted
	}
	// Both renderings must succeed; their notes say what is enforced where.
	notes := map[string][]string{}
	for _, b := range []compile.Backend{compile.IPTables, compile.NFTables} {
		rs, err := compilePolicy(e.ctx, p, b, "sipwall")
		if err == nil {
			_, err = pure(e.ctx, func() (map[string]string, error) { return render.Files(rs, string(b)) })
		}
		if e.ctx.Err() != nil {
			return exitFailure // interrupted
		}
		if err != nil {
			findings = append(findings, policy.Finding{Severity: policy.SevError, File: p.Source, Key: string(b), Message: err.Error()})
			continue
		}
		notes[string(b)] = rs.Notes
	}
	failed := false
	for i, f := range findings {
		if f.Severity == policy.SevError {
			if *force {
				findings[i].Severity = policy.SevWarning
				findings[i].Message += " (forced)"
			} else {
				failed = true
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if findings == nil {
			findings = []policy.Finding{}
		}
		enc.Encode(struct {
			File     string              `json:"file"`
			OK       bool                `json:"ok"`
			Findings []policy.Finding    `json:"findings"`
			Enforced map[string][]string `json:"enforced"`
		}{p.Source, !failed, findings, notes})
	} else {
		for _, f := range findings {
			fmt.Fprintln(e.stdout, f)
		}
		for _, b := range []string{"iptables", "nftables"} {
			fmt.Fprintf(e.stdout, "\nwith --backend %s:\n", b)
			for _, n := range notes[b] {
				fmt.Fprintf(e.stdout, "  - %s\n", n)
			}
		}
		if failed {
			fmt.Fprintf(e.stdout, "\n%s: errors found\n", p.Source)
		} else {
			fmt.Fprintf(e.stdout, "\n%s: OK\n", p.Source)
		}
	}
	if failed {
		return exitFailure
	}
	return exitOK
}
