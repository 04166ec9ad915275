package lists

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sipwall/sipwall/internal/render/nft"
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
	Backend string         `json:"backend"`
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
	var rules []Counter
	var err error
	switch s.Backend {
	case "iptables":
		rules, err = s.iptCounters(ctx)
	case "nftables":
		rules, err = s.nftCounters(ctx)
	default:
		err = fmt.Errorf("lists: unknown backend %q", s.Backend)
	}
	if err != nil {
		return nil, err
	}
	st := &Stats{Backend: s.Backend, Rules: rules, Lists: map[string]int{}}
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
	entries, err := s.List(ctx)
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

var iptCounterLine = regexp.MustCompile(`^\[(\d+):(\d+)\] -A (\S+) (.*)$`)
var iptComment = regexp.MustCompile(`--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))`)

func (s *Store) iptCounters(ctx context.Context) ([]Counter, error) {
	sum := map[[2]string]*Counter{}
	var order [][2]string
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		for _, table := range []string{"raw", "filter"} {
			out, err := s.R.Run(ctx, nil, tool, "-c", "-t", table)
			if err != nil {
				return nil, fmt.Errorf("stats: %w", err)
			}
			for _, line := range strings.Split(out, "\n") {
				m := iptCounterLine.FindStringSubmatch(strings.TrimSpace(line))
				if m == nil || !strings.HasPrefix(m[3], "sipwall-") {
					continue
				}
				cm := iptComment.FindStringSubmatch(m[4])
				if cm == nil {
					continue
				}
				comment := cm[1] + cm[2]
				k := [2]string{m[3], comment}
				c := sum[k]
				if c == nil {
					c = &Counter{Chain: m[3], Comment: comment}
					sum[k] = c
					order = append(order, k)
				}
				p, _ := strconv.ParseUint(m[1], 10, 64)
				b, _ := strconv.ParseUint(m[2], 10, 64)
				c.Packets += p
				c.Bytes += b
			}
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("stats: no sipwall rules in the kernel: run sipwall apply")
	}
	return collect(sum, order), nil
}

func collect(sum map[[2]string]*Counter, order [][2]string) []Counter {
	out := make([]Counter, 0, len(order))
	for _, k := range order {
		out = append(out, *sum[k])
	}
	return out
}

func (s *Store) nftCounters(ctx context.Context) ([]Counter, error) {
	out, err := s.R.Run(ctx, nil, "nft", "-j", "list", "table", "inet", nft.Table)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, fmt.Errorf("stats: table inet %s is not loaded: run sipwall apply", nft.Table)
		}
		return nil, fmt.Errorf("stats: %w", err)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain   string            `json:"chain"`
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("stats: cannot read nft's JSON: %w", err)
	}
	sum := map[[2]string]*Counter{}
	var order [][2]string
	for _, o := range doc.Nftables {
		r := o.Rule
		if r == nil || r.Comment == "" {
			continue
		}
		for _, raw := range r.Expr {
			var e struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				} `json:"counter"`
			}
			if json.Unmarshal(raw, &e) != nil || e.Counter == nil {
				continue
			}
			k := [2]string{r.Chain, r.Comment}
			c := sum[k]
			if c == nil {
				c = &Counter{Chain: r.Chain, Comment: r.Comment}
				sum[k] = c
				order = append(order, k)
			}
			c.Packets += e.Counter.Packets
			c.Bytes += e.Counter.Bytes
		}
	}
	return collect(sum, order), nil
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
