package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runAudit audits cfg with every root it does not set pointed at a missing
// directory, so that no test ever reads the host's own files.
func runAudit(t *testing.T, cfg Config) *Report {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "missing")
	if cfg.SSHDConfig == "" {
		cfg.SSHDConfig = filepath.Join(missing, "sshd_config")
	}
	if cfg.AsteriskDir == "" {
		cfg.AsteriskDir = filepath.Join(missing, "asterisk")
	}
	if cfg.Proc == "" {
		cfg.Proc = filepath.Join(missing, "proc")
	}
	if cfg.Sys == "" {
		cfg.Sys = filepath.Join(missing, "sys")
	}
	r, err := Audit(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return r
}

// keys renders the findings whose check starts with prefix as
// "severity check file:line", with file relative to root.
func keys(r *Report, root, prefix string) []string {
	var out []string
	for _, f := range r.Findings {
		if !strings.HasPrefix(f.Check, prefix) {
			continue
		}
		file := f.File
		if rel, err := filepath.Rel(root, f.File); err == nil && f.File != "" && !strings.HasPrefix(rel, "..") {
			file = filepath.ToSlash(rel)
		}
		out = append(out, fmt.Sprintf("%s %s %s:%d", f.Severity, f.Check, file, f.Line))
	}
	return out
}

// find returns the first finding with check and File:Line ending in where.
func find(t *testing.T, r *Report, check, where string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check && strings.HasSuffix(fmt.Sprintf("%s:%d", f.File, f.Line), where) {
			return f
		}
	}
	t.Fatalf("no finding %s at %s; have:\n%s", check, where, strings.Join(keys(r, "", ""), "\n"))
	return Finding{}
}

// writeTree writes files (path relative to root -> contents) and symbolic
// links (path -> target) below root.
func writeTree(t *testing.T, root string, files, links map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the regular files of dir src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// failingFiles is a FileSystem whose reads of the named paths fail.
type failingFiles struct {
	OSFiles
	fail map[string]error
}

func (f failingFiles) ReadFile(name string) ([]byte, error) {
	if err, ok := f.fail[name]; ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return f.OSFiles.ReadFile(name)
}
