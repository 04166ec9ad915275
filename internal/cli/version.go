package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Stamped at build time by scripts/package:
//
//	go build -ldflags "-X github.com/sipwall/sipwall/internal/cli.version=1.2.3
//	  -X github.com/sipwall/sipwall/internal/cli.commit=abc123
//	  -X github.com/sipwall/sipwall/internal/cli.commitTime=2026-12-01T06:00:00Z"
//
// A plain go build leaves them empty; the module version and the VCS
// stamps that go build records stand in for them.
var (
	version    string
	commit     string
	commitTime string
)

func init() {
	commands["version"] = command{"print sipwall's version, commit and Go version (also --version)", runVersion}
}

// buildVersion is what `sipwall version` reports.
type buildVersion struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
}

// readVersion combines the -X stamps with the build information the Go
// toolchain embeds in the binary; the stamps win.
func readVersion() buildVersion {
	v := buildVersion{
		Version:   "(devel)",
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			v.Version = info.Main.Version
		}
		if info.GoVersion != "" {
			v.GoVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	if commit != "" {
		v.Commit = commit
		v.Modified = false
	}
	if commitTime != "" {
		v.CommitTime = commitTime
	}
	return v
}

// releaseDate is the date the manual pages carry: the commit's, so that two
// builds of one commit give the same pages.
func (v buildVersion) releaseDate() string {
	if t, err := time.Parse(time.RFC3339, v.CommitTime); err == nil {
		return t.UTC().Format("2006-01-02")
	}
	return ""
}

func runVersion(e *env) int {
	fs := newFlags(e, "version", "[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall: version takes no arguments (got %q)\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	v := readVersion()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(e.stdout, "sipwall %s\n", v.Version)
	if v.Commit != "" {
		c := v.Commit
		if v.Modified {
			c += " (modified)"
		}
		if v.CommitTime != "" {
			c += " " + v.CommitTime
		}
		fmt.Fprintf(e.stdout, "commit %s\n", c)
	}
	fmt.Fprintf(e.stdout, "built with %s for %s\n", v.GoVersion, v.Platform)
	return exitOK
}
