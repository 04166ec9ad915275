package compile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/policy"
)

// trustedPolicy has n trusted.all prefixes, a tenth of them inside others.
func trustedPolicy(tb testing.TB, n int) *policy.Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("ssh:\n  ports: [22]\nsip:\n  mode: open\ntrusted:\n  all:\n")
	for i := range n {
		if i%10 == 9 {
			fmt.Fprintf(&b, "    - 10.%d.%d.0/24\n", (i/10)>>8&255, (i/10)&255)
			continue
		}
		fmt.Fprintf(&b, "    - 10.%d.%d.0/23\n", i>>7&255, (i<<1)&255)
	}
	p, err := policy.Parse("trusted.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkCompileTrusted compiles 4,000 and 40,000 trusted.all prefixes:
// the ratio of the two is the growth (10 for linear).
func BenchmarkCompileTrusted(b *testing.B) {
	for _, n := range []int{4000, 40000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := trustedPolicy(b, n)
			b.ResetTimer()
			for range b.N {
				if _, err := compile.Compile(p, compile.Options{Backend: backend.NFTables}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestTrustedDedupe(t *testing.T) {
	p := trustedPolicy(t, 2000)
	rs, err := compile.Compile(p, compile.Options{Backend: backend.NFTables})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rs.Sets {
		if s.Name != compile.SetTrusted {
			continue
		}
		// Every tenth prefix lies in an earlier /23 or is new; none of the
		// kept ones lies in another.
		for i, a := range s.Elements {
			for _, b := range s.Elements[i+1:] {
				if a.Overlaps(b) {
					t.Fatalf("%s and %s both kept", a, b)
				}
			}
		}
		return
	}
	t.Fatal("no trusted set")
}
