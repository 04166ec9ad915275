package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"

	"github.com/sipwall/sipwall/internal/audit"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

func runCheck(e *env) int {
	fs := newFlags(e, "check", "[-c FILE] [--asterisk-dir DIR] [--force] [--json]")
	file := fs.String("c", policy.DefaultPath, "policy `file`")
	asteriskDir := fs.String("asterisk-dir", audit.DefaultAsteriskDir, "warn about the transports, RTP range, IAX2 and trunks of Asterisk's configuration in `dir` that the policy does not cover (skipped when the default is absent)")
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
	pbxFindings, err := pbxCoverage(p, *asteriskDir, flagGiven(fs, "asterisk-dir"))
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall check: --asterisk-dir: %v\n", err)
		return exitUsage
	}
	findings = append(findings, pbxFindings...)
	// Every backend's rendering must succeed; their notes say what is
	// enforced where.
	notes := map[string][]string{}
	for _, b := range backend.Registered() {
		rs, err := compilePolicy(e.ctx, p, b, "sipwall")
		if err == nil {
			_, err = pure(e.ctx, func() (map[string]string, error) { return render.Files(rs, b) })
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
		for _, b := range backend.Registered() {
			fmt.Fprintf(e.stdout, "\nwith --backend %s:\n", b)
			for _, n := range notes[string(b)] {
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

// pbxCoverage compares the policy with the Asterisk configuration in dir:
// one warning per transport, RTP range, IAX2 listener and trunk the policy
// does not cover. A missing default directory is not an error.
func pbxCoverage(p *policy.Policy, dir string, explicit bool) ([]policy.Finding, error) {
	pbx, err := audit.ReadPBX(dir, nil)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []policy.Finding
	for _, f := range pbx.Uncovered(exposureOf(p)) {
		out = append(out, policy.Finding{Severity: policy.SevWarning, File: f.File, Line: f.Line, Key: f.Check, Message: f.Found + ": " + f.Why + "; " + f.Fix})
	}
	return out, nil
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
