package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	sw "github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/htmlreport"
	netlab "github.com/sipwall/sipwall/internal/lab"
)

func runLab(e *env) int {
	fs := newFlags(e, "lab", "[-c FILE] [--backend iptables|nftables] [--json] [--html FILE] [--keep]")
	file := fs.String("c", "", "policy `file` (default: the lab's built-in policy)")
	backend := fs.String("backend", "iptables", "iptables or nftables")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	htmlOut := fs.String("html", "", "also write the report as one self-contained HTML `file` (the three runs side by side, with a chart)")
	keep := fs.Bool("keep", false, "keep the lab's namespaces and servers up after the run, until Ctrl-C")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall lab: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	name := sw.Name(*backend)
	if name != sw.IPTables && name != sw.NFTables {
		fmt.Fprintf(e.stderr, "sipwall lab: --backend: %q is not iptables or nftables\n", *backend)
		return exitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall lab: %v\n", err)
		return exitFailure
	}
	rep, err := netlab.Run(e.ctx, netlab.Options{Policy: *file, Backend: name, Sipwall: self, Log: e.stderr, Keep: *keep})
	if err != nil {
		fmt.Fprintf(e.stderr, "sipwall lab: %v\n", err)
		var missing *netlab.MissingError
		if errors.As(err, &missing) {
			return exitUsage
		}
		return exitFailure
	}
	if *htmlOut != "" {
		var b bytes.Buffer
		err := htmlreport.Lab(&b, rep)
		if err == nil {
			err = writeFileAtomic(*htmlOut, b.Bytes())
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall lab: --html: %v\n", err)
			return exitFailure
		}
	}
	if *asJSON {
		rep.WriteJSON(e.stdout)
	} else {
		rep.WriteText(e.stdout)
	}
	if !rep.Passed() {
		return exitFailure
	}
	return exitOK
}
