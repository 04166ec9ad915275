package cli

import "fmt"

func runGuard(e *env) int {
	fmt.Fprintln(e.stderr, "sipwall guard: not implemented yet")
	return exitFailure
}
