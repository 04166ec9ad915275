package ir

import (
	"strings"
	"testing"
)

// TestGroupCounts: counters are summed per ruleset rule (both families,
// every prefix), grouped by kind in the order of Kinds; a group's total
// leaves out its statement-only rules when it has rules with a verdict;
// a counter the listing does not have is an error.
func TestGroupCounts(t *testing.T) {
	refs := []RuleRef{
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 1, Rule: 1, Kind: KindScannerSignature, Decides: true, Comment: "scanner signature a"},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 2, Rule: 2, Kind: KindScannerSignature, Decides: true, Comment: "scanner signature b"},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 3, Rule: 3, Kind: KindKnock, Comment: "knock: x"},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-scanner", Position: 1, Rule: 4, Kind: KindScannerBan, Comment: "remember"},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-scanner", Position: 2, Rule: 5, Kind: KindScannerBan, Decides: true, Comment: "drop"},
		{File: "rules.v4", Table: Filter, Chain: "sipwall-spoof", Position: 1, Rule: 6, Kind: KindSpoofing, Decides: true, Comment: "bogon"},
		{File: "rules.v4", Table: Filter, Chain: "sipwall-spoof", Position: 2, Rule: 6, Kind: KindSpoofing, Decides: true, Comment: "bogon"},
		{File: "rules.v6", Table: Raw, Chain: "sipwall-sip", Position: 1, Rule: 1, Kind: KindScannerSignature, Decides: true, Comment: "scanner signature a"},
	}
	counts := []Count{
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 1, Packets: 3, Bytes: 300},
		{File: "rules.v6", Table: Raw, Chain: "sipwall-sip", Position: 1, Packets: 2, Bytes: 200},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 2, Packets: 1, Bytes: 100},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 3, Packets: 7, Bytes: 700},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-scanner", Position: 1, Packets: 6, Bytes: 600},
		{File: "rules.v4", Table: Raw, Chain: "sipwall-scanner", Position: 2, Packets: 6, Bytes: 600},
		{File: "rules.v4", Chain: "sipwall-spoof", Position: 1, Packets: 4, Bytes: 40}, // no table: names are unique
		{File: "rules.v4", Table: Filter, Chain: "sipwall-spoof", Position: 2, Packets: 5, Bytes: 50},
	}
	rules, groups, err := GroupCounts(refs, counts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 6 || rules[0].Packets != 5 || rules[0].Bytes != 500 || rules[5].Packets != 9 {
		t.Errorf("rules: %+v", rules)
	}
	got := map[Kind][2]uint64{}
	var order []Kind
	for _, g := range groups {
		got[g.Kind] = [2]uint64{g.Packets, uint64(len(g.Rules))}
		order = append(order, g.Kind)
	}
	want := map[Kind][2]uint64{
		KindScannerSignature: {6, 2}, // 5 + 1
		KindScannerBan:       {6, 2}, // the drop only: "remember" counts the same packets
		KindKnock:            {7, 1}, // no rule with a verdict: the statements count
		KindSpoofing:         {9, 1},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("group %s: %d packets in %d rules, want %d in %d", k, got[k][0], got[k][1], w[0], w[1])
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("groups out of order: %v", order)
		}
	}

	_, _, err = GroupCounts(refs, []Count{{File: "rules.v4", Table: Raw, Chain: "sipwall-sip", Position: 9, Packets: 1}})
	if err == nil || !strings.Contains(err.Error(), "rule 9 of chain sipwall-sip") {
		t.Errorf("a counter the listing lacks: %v", err)
	}
}

// TestKindNames: every kind has a name and a description, and parses
// back from its name.
func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		if k.String() == "" || k.About() == "" || seen[k.String()] {
			t.Errorf("kind %d: name %q, about %q", k, k.String(), k.About())
		}
		seen[k.String()] = true
		if x, err := ParseKind(k.String()); err != nil || x != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, x, err)
		}
	}
	if _, err := ParseKind("nonsense"); err == nil {
		t.Error("ParseKind accepts an unknown name")
	}
}
