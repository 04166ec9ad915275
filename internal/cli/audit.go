package cli

import "fmt"

func runAudit(e *env) int {
	fmt.Fprintln(e.stderr, "sipwall audit: not implemented yet")
	return exitFailure
}
