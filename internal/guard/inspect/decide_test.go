package inspect

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestDecisionsHold(t *testing.T) {
	d := NewDecisions()
	a, b := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		a    netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true},                       // first verdict: acted on
		{a, time.Millisecond, false},       // a packet in flight
		{b, time.Millisecond, true},        // another source
		{a, Hold - time.Nanosecond, false}, // still held
		{a, Hold, true},                    // the hold is over: a new decision
		{a, Hold + time.Second, false},     // which holds again
	}
	for i, s := range steps {
		if got := d.Take(s.a, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: Take(%s, +%v) = %v, want %v", i, s.a, s.at, got, s.want)
		}
	}
	d.Prune(t0.Add(Hold + time.Second))
	if d.Len() != 1 {
		t.Errorf("after pruning at +%v: %d sources remembered, want 1 (%s, decided at +%v)", Hold+time.Second, d.Len(), a, Hold)
	}
	d.Prune(t0.Add(3 * Hold))
	if d.Len() != 0 {
		t.Errorf("after pruning at +%v: %d sources remembered, want 0", 3*Hold, d.Len())
	}
}

// TestInspectorIsPure: replay runs the inspector, so it must do no I/O of
// its own: none of its dependencies runs commands or talks to the kernel.
func TestInspectorIsPure(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not found: the dependency list needs it")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "os/exec" || strings.Contains(dep, "netlink") || strings.Contains(dep, "nftables") {
			t.Errorf("the inspector depends on %s", dep)
		}
		rel, ok := strings.CutPrefix(dep, "github.com/sipwall/sipwall/internal/")
		for _, io := range []string{"guard/nflog", "guard/ban", "guard/live", "apply", "lists", "backend", "netns"} {
			if ok && (rel == io || strings.HasPrefix(rel, io+"/")) {
				t.Errorf("the inspector depends on %s", dep)
			}
		}
	}
}
