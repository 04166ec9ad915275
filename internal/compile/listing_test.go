package compile_test

import (
	"fmt"
	"testing"

	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render"
)

// TestListing: for every golden policy, the files are exactly the join of
// the listing's entries, rules are numbered 1, 2, ... in each chain, and
// every rule entry carries the IR rule it renders and the ruleset's rule
// it came from (only iptables' jumps from built-in chains are the
// renderer's own).
func TestListing(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			rs, files := renderCase(t, c)
			l, err := render.List(rs, string(c.Backend))
			if err != nil {
				t.Fatal(err)
			}
			for name, text := range files {
				if got := l.Text(name); got != text {
					t.Errorf("%s: the listing's join differs from the file", name)
				}
			}
			inRuleset := map[*ir.Rule]bool{}
			for _, ch := range rs.Chains {
				for _, r := range ch.Rules {
					inRuleset[r] = true
				}
			}
			pos := map[string]int{}
			for _, e := range l.Rules() {
				k := fmt.Sprintf("%s %s %s", e.File, e.Table, e.Chain)
				pos[k]++
				if e.Position != pos[k] {
					t.Errorf("%s: rule %q at position %d, want %d", k, e.Line(), e.Position, pos[k])
				}
				if e.Rule == nil {
					t.Errorf("%s: rule %q has no IR rule", k, e.Line())
					continue
				}
				if e.From == nil && e.Rule.Kind != ir.KindDispatch {
					t.Errorf("%s: rule %q comes from no rule of the ruleset", k, e.Line())
				}
				if e.From != nil && !inRuleset[e.From] {
					t.Errorf("%s: rule %q names a rule that is not in the ruleset", k, e.Line())
				}
			}
			if len(pos) == 0 {
				t.Fatal("no rules listed")
			}
		})
	}
}
