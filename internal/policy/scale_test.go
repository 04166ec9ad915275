package policy

import (
	"fmt"
	"strings"
	"testing"
)

func portsPolicy(tb testing.TB, n int) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("ssh:\n  ports: [22]\nsip:\n  mode: open\naccept:\n  tcp: [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, 1+i%65535)
	}
	b.WriteString("]\n")
	p, err := Parse("ports.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkLintPorts lints 10,000 and 100,000 accept.tcp ports: the ratio
// of the two is the growth (10 for linear).
func BenchmarkLintPorts(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := portsPolicy(b, n)
			b.ResetTimer()
			for range b.N {
				p.Lint(HostFacts{})
			}
		})
	}
}

func TestLintOverlapsFoundAndBounded(t *testing.T) {
	p := portsPolicy(t, 100000) // 1-65535, then 1-34465 again
	fs := p.Lint(HostFacts{})
	var own, ssh, more int
	for _, f := range fs {
		switch {
		case f.Key == "accept.tcp" && strings.HasPrefix(f.Message, "and "):
			more++
		case f.Key == "accept.tcp" && strings.Contains(f.Message, "overlaps ssh.ports 22"):
			ssh++
		case f.Key == "accept.tcp" && strings.HasSuffix(f.Message, " overlap"):
			own++
		}
	}
	if own != 20 || ssh != 2 || more != 3 || len(fs) > 100 {
		t.Errorf("%d own overlaps, %d with ssh, %d summaries, %d findings:\n%v", own, ssh, more, len(fs), fs)
	}
	var want string
	for _, f := range fs {
		if strings.HasPrefix(f.Message, "and ") && f.Key == "accept.tcp" {
			want = f.Message
		}
	}
	if want != fmt.Sprintf("and %d more overlaps", 100000-65535-20) {
		t.Errorf("summary %q", want)
	}
	// Ranges: a range inside another, and one reaching past it.
	q, err := Parse("r.yaml", []byte("ssh:\n  ports: [22]\nsip:\n  mode: open\naccept:\n  tcp: [1000-2000, 1500, 2001-2100, 1999-2500]\n  udp: [5060]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range q.Lint(HostFacts{}) {
		if f.Key == "accept.tcp" || f.Key == "accept.udp" {
			got = append(got, f.Message)
		}
	}
	if strings.Join(got, "|") != "udp/5060 overlaps sip.udp_ports 5060-5082: the first rule to match wins (sip.udp_ports)|tcp/1000-2000 overlaps traps.ports 1433: the first rule to match wins (traps.ports)|1000-2000 and 1500 overlap|1000-2000 and 1999-2500 overlap|1999-2500 and 2001-2100 overlap" {
		t.Errorf("findings: %q", got)
	}
}
