package cli

import (
	"fmt"

	"github.com/sipwall/sipwall/internal/guard"
)

// scanLogs runs "guard --scan-log" on opened inputs: the report is written
// as the scan goes (matches as they are found, the summary last).
func scanLogs(e *env, inputs []guard.Input, opts guard.Options, asJSON, listMatches bool) int {
	var err error
	if asJSON {
		err = guard.WriteJSON(e.ctx, e.stdout, inputs, opts)
	} else {
		err = guard.WriteText(e.ctx, e.stdout, inputs, opts, listMatches)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall guard: %v\n", err)
		return exitFailure
	}
	return exitOK
}
