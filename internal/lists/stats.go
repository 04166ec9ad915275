package lists

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
)

// Counter is one rule's counters, summed over the address families.
type Counter struct {
	Chain   string `json:"chain"`
	Comment string `json:"comment"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Group is the counters of one kind of rule, explained.
type Group struct {
	Key     string    `json:"key"`
	What    string    `json:"what"`
	Packets uint64    `json:"packets"`
	Bytes   uint64    `json:"bytes"`
	Rules   []Counter `json:"rules,omitempty"`
}

// Stats are the ruleset's live counters and the lists' sizes.
type Stats struct {
	Backend backend.Name   `json:"backend"`
	Groups  []Group        `json:"groups"`
	Lists   map[string]int `json:"lists"`
	Rules   []Counter      `json:"rules"`
}

// groups classify rules by their comment, in the order they are shown.
var groups = []struct {
	key, what string
	match     func(c Counter) bool
}{
	{"scanner-signature", "SIP scans thwarted, by scanner signature (the packet is dropped, the source banned)",
		func(c Counter) bool { return strings.HasPrefix(c.Comment, "scanner signature ") }},
	{"scanner-inspected", "SIP packets from unknown sources handed to the inspector (sipwall guard) to look for scanners",
		func(c Counter) bool { return strings.HasPrefix(c.Comment, "to the SIP inspector") }},
	{"scanner-banned", "packets dropped from sources banned as SIP scanners",
		func(c Counter) bool { return c.Comment == "banned as a SIP scanner" }},
	{"banned", "packets dropped from sources banned by hand or by guard",
		func(c Counter) bool { return c.Comment == "banned by hand or by guard" }},
	{"trap", "trap port hits (the source is banned from every port)",
		func(c Counter) bool { return strings.HasPrefix(c.Comment, "trap port ") }},
	{"trapped", "packets dropped from sources caught by a trap port",
		func(c Counter) bool { return c.Comment == "caught by a trap port" }},
	{"rate-limit", "packets dropped by a per-source rate limit",
		func(c Counter) bool { return rateLimit.MatchString(c.Comment) }},
	{"knock", "knocks seen (SIP naming the secret hostname or an admitted user-agent)",
		func(c Counter) bool { return strings.HasPrefix(c.Comment, "knock: ") }},
	{"no-knock", "SIP dropped because the source has not knocked",
		func(c Counter) bool { return c.Comment == "SIP without the knock" || c.Comment == "no knock yet" }},
	{"admitted", "SIP accepted from admitted, allowed or trusted sources",
		func(c Counter) bool {
			return c.Comment == "SIP from admitted sources" || c.Comment == "SIP from allowed sources" || c.Comment == "SIP from trusted sources"
		}},
	{"spoofing", "packets dropped as spoofed or malformed (bogons, bad TCP flags, empty UDP)",
		func(c Counter) bool {
			return c.Comment == "bogon source" || strings.HasPrefix(c.Comment, "bad TCP flags") || c.Comment == "empty UDP" ||
				strings.HasPrefix(c.Comment, "broadcast, multicast") || strings.HasPrefix(c.Comment, "new TCP without SYN") ||
				strings.HasPrefix(c.Comment, "new SYN,ACK")
		}},
}

var rateLimit = regexp.MustCompile(`\bover \d+ `)

// Stats reads the counters of sipwall's rules from the kernel and groups
// them by what they count.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	if s.Backend == nil {
		return nil, fmt.Errorf("stats: no backend")
	}
	raw, err := s.Backend.Counters(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	// Summed over the families, by chain and comment.
	sum := map[[2]string]*Counter{}
	var order [][2]string
	for _, r := range raw {
		if r.Comment == "" {
			continue
		}
		k := [2]string{r.Chain, r.Comment}
		c := sum[k]
		if c == nil {
			c = &Counter{Chain: r.Chain, Comment: r.Comment}
			sum[k] = c
			order = append(order, k)
		}
		c.Packets += r.Packets
		c.Bytes += r.Bytes
	}
	rules := make([]Counter, 0, len(order))
	for _, k := range order {
		rules = append(rules, *sum[k])
	}
	st := &Stats{Backend: s.Name(), Rules: rules, Lists: map[string]int{}}
	for _, g := range groups {
		grp := Group{Key: g.key, What: g.what}
		for _, c := range rules {
			if g.match(c) {
				grp.Packets += c.Packets
				grp.Bytes += c.Bytes
				grp.Rules = append(grp.Rules, c)
			}
		}
		if len(grp.Rules) > 0 {
			st.Groups = append(st.Groups, grp)
		}
	}
	entries, err := s.List(ctx, s.lists()...)
	if err != nil {
		return nil, err
	}
	for _, n := range Names {
		st.Lists[n] = 0
	}
	for _, e := range entries {
		st.Lists[e.List]++
	}
	return st, nil
}

// Summary says the counters in words, one line each, like the article's
// `iptables -nvL -t raw | grep BADSIP` summed and explained.
func (st *Stats) Summary() []string {
	var out []string
	for _, g := range st.Groups {
		out = append(out, fmt.Sprintf("%s: %d packets, %s", g.What, g.Packets, HumanBytes(g.Bytes)))
		if len(g.Rules) > 1 {
			rs := append([]Counter(nil), g.Rules...)
			sort.SliceStable(rs, func(i, j int) bool { return rs[i].Packets > rs[j].Packets })
			for _, r := range rs {
				out = append(out, fmt.Sprintf("    %-46s %12d packets %10s", r.Comment, r.Packets, HumanBytes(r.Bytes)))
			}
		}
	}
	var ls []string
	for _, n := range Names {
		ls = append(ls, fmt.Sprintf("%s %d", n, st.Lists[n]))
	}
	out = append(out, "sources listed now: "+strings.Join(ls, ", "))
	return out
}

// HumanBytes writes a byte count with a binary unit.
func HumanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
