package compile_test

import (
	"fmt"
	"testing"

	"github.com/sipwall/sipwall/internal/compile"
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
			l, err := render.List(rs, c.Backend)
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

// banSets are the lists a rule bans a source by adding it to.
var banSets = map[string]bool{compile.SetBanned: true, compile.SetScanners: true, compile.SetTrapped: true, compile.SetAnswered: true}

// TestEveryDroppingRuleHasAGroup: for every golden policy, each rule that
// drops (verdict drop or reject) or bans (adds the source to the banned,
// scanners or trapped list, or to one of the article's xt_recent ban
// lists) has a kind, so that sipwall stats counts it in a group; and
// every other rule has one too.
func TestEveryDroppingRuleHasAGroup(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			rs, _ := renderCase(t, c)
			l, err := render.List(rs, c.Backend)
			if err != nil {
				t.Fatal(err)
			}
			dropping := 0
			for _, e := range l.Rules() {
				r := e.Rule
				drops := r.Verdict.Kind == ir.Drop || r.Verdict.Kind == ir.RejectTCPReset
				for _, s := range r.Stmts {
					if a, ok := s.(ir.AddToSet); ok && banSets[a.Set] {
						drops = true
					}
				}
				for _, m := range r.Matches {
					if x, ok := m.(ir.Recent); ok && x.Op == ir.RecentSet && (x.Name == "BADSIP" || x.Name == "RLM") {
						drops = true
					}
				}
				if drops {
					dropping++
				}
				switch {
				case r.Kind == ir.KindNone && drops:
					t.Errorf("%s %s #%d drops or bans but has no group: %s", e.File, e.Chain, e.Position, e.Line())
				case r.Kind == ir.KindNone:
					t.Errorf("%s %s #%d has no kind: %s", e.File, e.Chain, e.Position, e.Line())
				case r.Kind.String() == "" || r.Kind.About() == "":
					t.Errorf("%s %s #%d has an unknown kind %d", e.File, e.Chain, e.Position, r.Kind)
				}
			}
			if dropping == 0 {
				t.Fatal("no dropping rule: the test checks nothing")
			}
			// Stats shows every rule in the group of its kind.
			_, groups, err := ir.GroupCounts(l.Refs(rs), nil)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, g := range groups {
				for _, r := range g.Rules {
					if r.Kind != g.Kind {
						t.Errorf("rule %q of kind %s in group %s", r.Comment, r.Kind, g.Kind)
					}
				}
				n += len(g.Rules)
			}
			rules, _, _ := ir.GroupCounts(l.Refs(rs), nil)
			if n != len(rules) {
				t.Errorf("%d rules in groups, %d rules in the ruleset", n, len(rules))
			}
		})
	}
}
