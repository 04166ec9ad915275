package compile_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenCase is one policy rendered by one backend and profile.
type goldenCase struct {
	Name    string // golden file base name
	Policy  string
	Backend backend.Name
	Article bool
}

// goldenCases lists every policy in testdata/policies plus examples/lab.yaml,
// for both backends, and the article profile of the lab.
func goldenCases(t *testing.T) []goldenCase {
	files, err := filepath.Glob("testdata/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test policies: %v", err)
	}
	files = append(files, "../../examples/lab.yaml")
	var cases []goldenCase
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".yaml")
		cases = append(cases,
			goldenCase{base + ".iptables", f, backend.IPTables, false},
			goldenCase{base + ".nft", f, backend.NFTables, false})
	}
	cases = append(cases,
		goldenCase{"lab.article.iptables", "../../examples/lab.yaml", backend.IPTables, true},
		goldenCase{"open.article.iptables", "testdata/policies/open.yaml", backend.IPTables, true},
		goldenCase{"scanners-only.article.iptables", "testdata/policies/scanners-only.yaml", backend.IPTables, true})
	return cases
}

// renderCase compiles and renders a case; for iptables the three files
// follow one another under "### NAME" headers.
func renderCase(t testing.TB, c goldenCase) (*ir.Ruleset, map[string]string) {
	t.Helper()
	p, err := policy.LoadFile(c.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var rs *ir.Ruleset
	if c.Article {
		rs, err = compile.Article(p)
	} else {
		rs, err = compile.Compile(p, compile.Options{Backend: c.Backend})
	}
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(rs, c.Backend)
	if err != nil {
		t.Fatal(err)
	}
	return rs, files
}

func joinFiles(files map[string]string) string {
	var b strings.Builder
	for _, n := range []string{"rules.v4", "rules.v6", "ipsets", "sipwall.nft"} {
		if s, ok := files[n]; ok {
			b.WriteString("### " + n + "\n" + s)
		}
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			_, files := renderCase(t, c)
			got := joinFiles(files)
			path := filepath.Join("testdata", "golden", c.Name)
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs from its golden file (-want +got); run go test -update if intended:\n%s", path, diff)
			}
		})
	}
}
