package cli

import (
	"fmt"

	"github.com/sipwall/sipwall/internal/audit"
)

const auditSynopsis = "[-c POLICY] [--json] [--sshd-config FILE] [--asterisk-dir DIR] [--proc DIR] [--sys DIR]"

// auditPolicy turns the policy file given with -c into what the audit
// compares the host with: the exposure the policy allows and the state of
// the applied ruleset. A nil Exposure means the comparison is not available;
// the audit then says so in an info finding and skips those checks.
var auditPolicy = policyExposure

// runAudit implements "sipwall audit": it prints findings about the host
// (sshd, Asterisk, sockets, kernel, firewall) and exits 1 when any of them
// is of high severity, so that it can gate a deployment.
func runAudit(e *env) int {
	fs := newFlags(e, "audit", auditSynopsis)
	policyPath := fs.String("c", "", "policy `file` to compare the host with")
	jsonOut := fs.Bool("json", false, "print the findings as JSON")
	sshdConfig := fs.String("sshd-config", audit.DefaultSSHDConfig, "sshd configuration `file`")
	asteriskDir := fs.String("asterisk-dir", audit.DefaultAsteriskDir, "Asterisk configuration `dir`ectory")
	procDir := fs.String("proc", audit.DefaultProc, "proc file system `dir`ectory (or a copy of one)")
	sysDir := fs.String("sys", audit.DefaultSys, "sys file system `dir`ectory (or a copy of one)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall audit: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	cfg := audit.Config{
		SSHDConfig:  *sshdConfig,
		AsteriskDir: *asteriskDir,
		Proc:        *procDir,
		Sys:         *sysDir,
	}
	if *policyPath != "" {
		// The policy is loaded and validated as by every other command;
		// its errors name the file, line and key.
		exp, fw, err := auditPolicy(e.ctx, *policyPath)
		if err != nil {
			printErrors(e, "sipwall audit", err)
			return exitUsage
		}
		cfg.PolicyFile, cfg.Exposure, cfg.Firewall = *policyPath, exp, fw
	}
	report, err := audit.Audit(e.ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall audit: %v\n", err)
		return exitFailure
	}
	if *jsonOut {
		err = report.WriteJSON(e.stdout)
	} else {
		err = report.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall audit: %v\n", err)
		return exitFailure
	}
	if report.HasHigh() {
		return exitFailure
	}
	return exitOK
}
