package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/policy"
)

// exposure is what a policy leaves open, to whom: the summary apply prints
// and the ports a diff shows opened and closed.
func exposure(p *policy.Policy) []apply.Opening {
	var out []apply.Opening
	join := func(ps []policy.Port) string {
		s := make([]string, len(ps))
		for i, x := range ps {
			s[i] = x.String()
		}
		return strings.Join(s, ",")
	}
	nets := func(ps []policy.Prefix) string {
		s := make([]string, len(ps))
		for i, x := range ps {
			s[i] = backend.FormatPrefix(x.Prefix)
		}
		return strings.Join(s, ", ")
	}
	notBanned := "everyone not banned (banned, scanners, trapped dropped)"
	if len(p.SSH.Ports) > 0 {
		out = append(out, apply.Opening{Service: "SSH", Proto: "tcp", Ports: join(p.SSH.Ports), Who: notBanned})
	}
	var sipWho string
	admit := "admitted until removed"
	if p.SIP.AdmitFor.Duration > 0 {
		admit = "admitted for " + p.SIP.AdmitFor.String()
	}
	switch p.SIP.Mode {
	case policy.ModeHostname:
		sipWho = "phones that sent a secret hostname (the knock; " + admit + "), the allowed list"
	case policy.ModeUserAgent:
		sipWho = "phones whose user agent is on the allow-list (" + admit + "), the allowed list"
	case policy.ModeOpen:
		sipWho = "everyone but scanners and banned sources, within the REGISTER/INVITE limits"
	case policy.ModeScannersOnly:
		sipWho = "everyone but scanners and banned sources (scanner protection only)"
	default:
		sipWho = "mode " + p.SIP.Mode
	}
	var trusted []policy.Prefix
	trusted = append(append(trusted, p.Trusted.All...), p.Trusted.SIP...)
	if len(trusted) > 0 {
		sipWho += ", trusted " + nets(trusted)
	}
	for _, h := range p.Trusted.Hosts {
		sipWho += ", trusted host " + h.Name
	}
	if len(p.SIP.UDPPorts) > 0 {
		out = append(out, apply.Opening{Service: "SIP", Proto: "udp", Ports: join(p.SIP.UDPPorts), Who: sipWho})
	}
	if len(p.SIP.TCPPorts) > 0 {
		out = append(out, apply.Opening{Service: "SIP", Proto: "tcp", Ports: join(p.SIP.TCPPorts), Who: sipWho})
	}
	if len(p.SIP.TLSPorts) > 0 {
		out = append(out, apply.Opening{Service: "SIP over TLS", Proto: "tcp", Ports: join(p.SIP.TLSPorts), Who: sipWho})
	}
	if len(p.SIP.RTPPorts) > 0 {
		out = append(out, apply.Opening{Service: "RTP", Proto: "udp", Ports: join(p.SIP.RTPPorts), Who: notBanned})
	}
	if len(p.Extra.TCP) > 0 {
		out = append(out, apply.Opening{Service: "accepted service", Proto: "tcp", Ports: join(p.Extra.TCP), Who: notBanned})
	}
	if len(p.Extra.UDP) > 0 {
		out = append(out, apply.Opening{Service: "accepted service", Proto: "udp", Ports: join(p.Extra.UDP), Who: notBanned})
	}
	if len(p.Trusted.All) > 0 {
		out = append(out, apply.Opening{Service: "trusted", Proto: "any", Ports: "any", Who: nets(p.Trusted.All)})
	}
	for _, h := range p.Trusted.Hosts {
		if h.Access == "all" {
			out = append(out, apply.Opening{Service: "trusted", Proto: "any", Ports: "any", Who: "host " + h.Name})
		}
	}
	// Trap ports, grouped by what a touch does.
	var kinds []string
	byKind := map[string][]string{}
	for _, tp := range p.Traps.Ports {
		what := tp.Action
		switch tp.Action {
		case policy.TrapBan:
			what = "a touch bans the source from every port for " + p.Traps.BanFor.String()
		case policy.TrapDrop:
			what = "dropped silently"
		case policy.TrapAccept:
			what = "accepted (a service runs there)"
		}
		if byKind[what] == nil {
			kinds = append(kinds, what)
		}
		byKind[what] = append(byKind[what], fmt.Sprint(tp.Port))
	}
	for _, k := range kinds {
		out = append(out, apply.Opening{Service: "trap", Proto: "tcp", Ports: strings.Join(byKind[k], ","), Who: k})
	}
	return out
}

// genDiff is what an apply would change: in words and as a ruleset diff.
type genDiff struct {
	From         backend.Name    `json:"from_backend,omitempty"`
	To           backend.Name    `json:"to_backend"`
	Changed      bool            `json:"changed"`
	RulesAdded   []string        `json:"rules_added"`
	RulesRemoved []string        `json:"rules_removed"`
	SetsAdded    []string        `json:"sets_added"`
	SetsRemoved  []string        `json:"sets_removed"`
	SetsChanged  []string        `json:"sets_changed"`
	Opened       []apply.Opening `json:"opened"`
	Closed       []apply.Opening `json:"closed"`
	// OpenUnknown: the applied generation did not record what it opens.
	OpenUnknown bool `json:"open_unknown,omitempty"`
	// Unified is the ruleset diff, file by file.
	Unified string `json:"unified"`
}

// diffGenerations compares the applied generation (nil: none) with the
// new one.
func diffGenerations(cur, gen *apply.Generation) *genDiff {
	d := &genDiff{To: gen.Backend, RulesAdded: []string{}, RulesRemoved: []string{}, SetsAdded: []string{}, SetsRemoved: []string{}, SetsChanged: []string{}, Opened: []apply.Opening{}, Closed: []apply.Opening{}}
	var oldFiles map[string]string
	var oldSets []backend.Set
	var oldOpen []apply.Opening
	if cur != nil {
		d.From = cur.Backend
		oldFiles, oldSets, oldOpen = cur.Files, cur.Sets, cur.Open
		d.OpenUnknown = cur.Open == nil
	}
	names := map[string]bool{}
	for n := range oldFiles {
		names[n] = true
	}
	for n := range gen.Files {
		names[n] = true
	}
	var order []string
	for n := range names {
		order = append(order, n)
	}
	sort.Strings(order)
	var uni strings.Builder
	var oldRules, newRules []string
	for _, n := range order {
		uni.WriteString(unifiedDiff("applied/"+n, "new/"+n, oldFiles[n], gen.Files[n]))
		oldRules = append(oldRules, ruleLines(n, oldFiles[n])...)
		newRules = append(newRules, ruleLines(n, gen.Files[n])...)
	}
	d.Unified = uni.String()
	d.RulesAdded, d.RulesRemoved = minus(newRules, oldRules), minus(oldRules, newRules)
	oldByName := map[string]backend.Set{}
	for _, s := range oldSets {
		oldByName[s.Name] = s
	}
	newByName := map[string]bool{}
	for _, s := range gen.Sets {
		newByName[s.Name] = true
		o, ok := oldByName[s.Name]
		switch {
		case !ok:
			d.SetsAdded = append(d.SetsAdded, s.Name)
		case o.Timeout != s.Timeout || o.Size != s.Size || o.Networks != s.Networks:
			d.SetsChanged = append(d.SetsChanged, fmt.Sprintf("%s (timeout %s→%s, size %d→%d)", s.Name, o.Timeout, s.Timeout, o.Size, s.Size))
		}
	}
	for _, s := range oldSets {
		if !newByName[s.Name] {
			d.SetsRemoved = append(d.SetsRemoved, s.Name)
		}
	}
	if !d.OpenUnknown {
		key := func(os []apply.Opening) map[string]apply.Opening {
			m := map[string]apply.Opening{}
			for _, o := range os {
				m[o.String()] = o
			}
			return m
		}
		om, nm := key(oldOpen), key(gen.Open)
		for _, o := range gen.Open {
			if _, ok := om[o.String()]; !ok {
				d.Opened = append(d.Opened, o)
			}
		}
		for _, o := range oldOpen {
			if _, ok := nm[o.String()]; !ok {
				d.Closed = append(d.Closed, o)
			}
		}
	}
	d.Changed = d.Unified != "" || d.From != d.To
	return d
}

// ruleLines are the rules of a rendered file, each prefixed by the file:
// iptables "-A" lines, nftables statements inside chains.
func ruleLines(file, text string) []string {
	var out []string
	inChain := false
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "-A "):
			out = append(out, file+": "+t)
		case strings.HasPrefix(t, "chain ") && strings.HasSuffix(t, "{"):
			inChain = true
			out = append(out, file+": "+strings.TrimSuffix(t, " {"))
		case inChain && t == "}":
			inChain = false
		case inChain && t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "comment "):
			out = append(out, file+": "+t)
		}
	}
	return out
}

// minus is a without the lines of b (as multisets, in a's order).
func minus(a, b []string) []string {
	n := map[string]int{}
	for _, l := range b {
		n[l]++
	}
	out := []string{}
	for _, l := range a {
		if n[l] > 0 {
			n[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// printDiff writes d in words; with unified, the ruleset diff follows.
func printDiff(w io.Writer, d *genDiff, unified bool) {
	if !d.Changed {
		fmt.Fprintln(w, "no change: the applied ruleset is already this one")
		return
	}
	if d.From == "" {
		fmt.Fprintf(w, "nothing applied yet: the whole %s ruleset would be new\n", d.To)
	} else if d.From != d.To {
		fmt.Fprintf(w, "backend: %s → %s (the lists are carried over, the %s ruleset and sets removed)\n", d.From, d.To, d.From)
	}
	fmt.Fprintf(w, "rules:   %d added, %d removed\n", len(d.RulesAdded), len(d.RulesRemoved))
	show := func(sign string, ls []string) {
		for i, l := range ls {
			if i == 15 {
				fmt.Fprintf(w, "  … and %d more\n", len(ls)-15)
				break
			}
			fmt.Fprintf(w, "  %s %s\n", sign, l)
		}
	}
	show("+", d.RulesAdded)
	show("-", d.RulesRemoved)
	if len(d.SetsAdded)+len(d.SetsRemoved)+len(d.SetsChanged) > 0 {
		fmt.Fprintln(w, "sets:")
		show("+", d.SetsAdded)
		show("-", d.SetsRemoved)
		show("~", d.SetsChanged)
	}
	switch {
	case d.OpenUnknown:
		fmt.Fprintln(w, "ports:   the applied ruleset predates the record of its ports: see the rules")
	case len(d.Opened)+len(d.Closed) > 0:
		fmt.Fprintln(w, "ports:")
		for _, o := range d.Opened {
			fmt.Fprintf(w, "  + opened %s\n", o)
		}
		for _, o := range d.Closed {
			fmt.Fprintf(w, "  - closed %s\n", o)
		}
	default:
		fmt.Fprintln(w, "ports:   none opened or closed")
	}
	if unified {
		fmt.Fprintln(w)
		fmt.Fprint(w, d.Unified)
	}
}

// printSummary is the one screen after an apply: what is open to whom,
// and the lists carried over.
func printSummary(w io.Writer, gen *apply.Generation, counts map[string]int) {
	fmt.Fprintln(w, "open now:")
	for _, o := range gen.Open {
		fmt.Fprintf(w, "  %-13s %-4s %-12s %s\n", o.Service, o.Proto, o.Ports, o.Who)
	}
	if len(gen.Open) == 0 {
		fmt.Fprintln(w, "  nothing: every new connection is dropped")
	}
	if len(counts) > 0 {
		var ls []string
		for l, n := range counts {
			ls = append(ls, fmt.Sprintf("%s %d", l, n))
		}
		sort.Strings(ls)
		fmt.Fprintf(w, "lists kept:  %s\n", strings.Join(ls, ", "))
	}
}

// listCounts counts the entries of the dynamic lists in gen's sets.
func listCounts(ctx context.Context, gen *apply.Generation) map[string]int {
	be, err := backend.Open(gen.Backend, backend.Host{})
	if err != nil {
		return nil
	}
	var lists []string
	seen := map[string]bool{}
	for _, s := range gen.Sets {
		if !s.Static && !seen[s.List] {
			seen[s.List] = true
			lists = append(lists, s.List)
		}
	}
	es, err := be.Store(gen.Sets).Read(ctx, lists...)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, l := range lists {
		out[l] = 0
	}
	for _, e := range es {
		out[e.List]++
	}
	return out
}

// unifiedDiff is a unified diff (3 lines of context) of a and b, "" when
// they are equal.
func unifiedDiff(aName, bName, a, b string) string {
	if a == b {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	// Longest common subsequence, by dynamic programming from the end.
	n, m := len(al), len(bl)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			ops = append(ops, op{' ', al[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', al[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', bl[j], i, j})
			j++
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	const ctxLines = 3
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(0, k-ctxLines)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctxLines || run == len(ops) {
				end = min(end+ctxLines, len(ops))
				break
			}
			end = run
		}
		var ac, bc int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				ac++
			}
			if o.kind != '-' {
				bc++
			}
		}
		as, bs := ops[start].ai+1, ops[start].bi+1
		if ac == 0 {
			as--
		}
		if bc == 0 {
			bs--
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", as, ac, bs, bc)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		k = end
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
