package iptables

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
)

const ownPrefix = "sipwall-"

var builtins = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}

// iptTable is one table of an iptables-save / iptables-restore file.
type iptTable struct {
	name     string
	order    []string          // chain names in declaration order
	policies map[string]string // chain → policy ("-" for user chains)
	rules    []string          // "-A CHAIN ..." lines
	counts   [][2]uint64       // their packets and bytes (iptables-save -c)
	// policyCounts are the base chains' policy counters (iptables-save -c).
	policyCounts map[string][2]uint64
}

// parseIPT parses iptables-save output or a rendered rules file.
func parseIPT(text string) map[string]*iptTable {
	tables := map[string]*iptTable{}
	var cur *iptTable
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		var count [2]uint64
		if strings.HasPrefix(line, "[") { // iptables-save -c: "[pkts:bytes] -A ..."
			if i := strings.Index(line, "] "); i > 0 {
				p, b, _ := strings.Cut(line[1:i], ":")
				count[0], _ = strconv.ParseUint(p, 10, 64)
				count[1], _ = strconv.ParseUint(b, 10, 64)
				line = line[i+2:]
			}
		}
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &iptTable{name: line[1:], policies: map[string]string{}, policyCounts: map[string][2]uint64{}}
			tables[cur.name] = cur
		case cur == nil || line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 {
				cur.order = append(cur.order, f[0])
				cur.policies[f[0]] = f[1]
			}
			if len(f) >= 3 { // ":INPUT DROP [pkts:bytes]"
				p, b, _ := strings.Cut(strings.Trim(f[2], "[]"), ":")
				var c [2]uint64
				c[0], _ = strconv.ParseUint(p, 10, 64)
				c[1], _ = strconv.ParseUint(b, 10, 64)
				cur.policyCounts[f[0]] = c
			}
		case strings.HasPrefix(line, "-A "):
			cur.rules = append(cur.rules, line)
			cur.counts = append(cur.counts, count)
		case line == "COMMIT":
			cur = nil
		}
	}
	return tables
}

// jumpTarget returns X for a rule "-A BUILTIN -j X" (a plain hook jump).
func jumpTarget(rule string) (chain, target string, ok bool) {
	f := strings.Fields(rule)
	if len(f) == 4 && f[0] == "-A" && f[2] == "-j" {
		return f[1], f[3], true
	}
	return "", "", false
}

type family struct {
	v, save, restore, file string
}

var families = []family{
	{"4", "iptables-save", "iptables-restore", "rules.v4"},
	{"6", "ip6tables-save", "ip6tables-restore", "rules.v6"},
}

var managedTables = []string{"raw", "filter"}

// ownPart extracts sipwall's part of a kernel listing as a rules file:
// sipwall's chains and rules, the hook jumps to them, and the built-in
// policies that differ from now's (declaring a built-in chain creates it
// under iptables-nft, so only the ones to change are declared).
func ownPart(snap, now map[string]*iptTable) string {
	var b strings.Builder
	for _, t := range managedTables {
		st := snap[t]
		if st == nil {
			continue
		}
		nt := now[t]
		fmt.Fprintf(&b, "*%s\n", t)
		for _, c := range st.order {
			if builtins[c] && nt != nil && nt.policies[c] != "" && nt.policies[c] != st.policies[c] {
				fmt.Fprintf(&b, ":%s %s [0:0]\n", c, st.policies[c])
			} else if strings.HasPrefix(c, ownPrefix) {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c)
			}
		}
		for _, r := range st.rules {
			c, tgt, isJump := jumpTarget(r)
			if strings.HasPrefix(strings.Fields(r)[1], ownPrefix) || (isJump && builtins[c] && strings.HasPrefix(tgt, ownPrefix)) {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// kernelTables reads the managed tables of a family as the kernel has them.
func (b *Backend) kernelTables(ctx context.Context, f family) (map[string]*iptTable, error) {
	out := map[string]*iptTable{}
	for _, t := range managedTables {
		text, err := b.run.Run(ctx, nil, f.save, "-t", t)
		if err != nil {
			return nil, fmt.Errorf("iptables: read table %s (IPv%s): %w", t, f.v, err)
		}
		if tab := parseIPT(text)[t]; tab != nil {
			out[t] = tab
		}
	}
	return out, nil
}

// revert undoes a partly applied family: sipwall's part is put back as the
// snapshot had it, with the same surgical --noflush input as an apply, so
// other tools' rules are not even rewritten. Tables that did not exist
// before are removed again when nothing but empty built-in chains is left.
func (b *Backend) revert(ctx context.Context, f family, snap map[string]*iptTable, existed map[string]bool) error {
	now, err := b.kernelTables(ctx, f)
	if err != nil {
		return err
	}
	input := restoreInput(f, ownPart(snap, now), now, &backend.Memory{})
	if _, err := b.run.Run(ctx, strings.NewReader(input), f.restore, "--noflush"); err != nil {
		return err
	}
	return b.dropCreatedTables(ctx, f, existed)
}

// nftTableFamily is the nftables family iptables-nft keeps a family's tables in.
func (f family) nftFamily() string {
	if f.v == "6" {
		return "ip6"
	}
	return "ip"
}

var nftChainName = regexp.MustCompile(`(?m)^\tchain (\S+) \{`)

// tablesExisting reports which managed tables ("raw") and built-in chains
// ("raw PREROUTING") exist in the kernel. iptables-nft creates them on
// first use; with iptables-legacy they always exist.
func (b *Backend) tablesExisting(ctx context.Context, f family) map[string]bool {
	out := map[string]bool{}
	ver, _ := b.run.Run(ctx, nil, f.restore, "--version")
	for _, t := range managedTables {
		if !strings.Contains(ver, "nf_tables") {
			out[t] = true
			for c := range builtins {
				out[t+" "+c] = true
			}
			continue
		}
		listing, err := b.run.Run(ctx, nil, "nft", "list", "table", f.nftFamily(), t)
		out[t] = err == nil
		for _, m := range nftChainName.FindAllStringSubmatch(listing, -1) {
			out[t+" "+m[1]] = true
		}
	}
	return out
}

// dropCreatedTables removes the tables and built-in chains that did not
// exist before, if they hold nothing: empty, with an ACCEPT policy.
func (b *Backend) dropCreatedTables(ctx context.Context, f family, existed map[string]bool) error {
	now, err := b.kernelTables(ctx, f)
	if err != nil {
		return err
	}
	for _, t := range managedTables {
		if existed[t] {
			tab := now[t]
			if tab == nil {
				continue
			}
			for _, c := range tab.order {
				if !builtins[c] || existed[t+" "+c] || tab.policies[c] != "ACCEPT" {
					continue
				}
				used := false
				for _, r := range tab.rules {
					used = used || strings.Fields(r)[1] == c
				}
				if !used {
					b.run.Run(ctx, nil, "nft", "delete", "chain", f.nftFamily(), t, c)
				}
			}
			continue
		}
		tab := now[t]
		empty := tab == nil || len(tab.rules) == 0
		if tab != nil {
			for _, c := range tab.order {
				if !builtins[c] || tab.policies[c] != "ACCEPT" {
					empty = false
				}
			}
		}
		if empty {
			b.run.Run(ctx, nil, "nft", "delete", "table", f.nftFamily(), t)
		}
	}
	return nil
}

// restoreInput turns a rendered rules file into iptables-restore --noflush
// input that changes only sipwall's part of the kernel's tables: own chains
// re-declared (created or flushed) and filled, hook jumps added once,
// duplicates and stale chains removed, built-in policies set (and the old
// ones remembered in st so that removing sipwall restores them).
func restoreInput(f family, rendered string, kernel map[string]*iptTable, m *backend.Memory) string {
	want := parseIPT(rendered)
	var b strings.Builder
	for _, t := range managedTables {
		nt, kt := want[t], kernel[t]
		if kt == nil {
			kt = &iptTable{policies: map[string]string{}}
		}
		var kernelOwn []string
		for _, c := range kt.order {
			if strings.HasPrefix(c, ownPrefix) {
				kernelOwn = append(kernelOwn, c)
			}
		}
		if nt == nil && len(kernelOwn) == 0 {
			continue
		}
		if nt == nil {
			nt = &iptTable{policies: map[string]string{}}
		}
		fmt.Fprintf(&b, "*%s\n", t)
		for _, c := range nt.order {
			pol := nt.policies[c]
			if builtins[c] {
				key := f.v + " " + t + " " + c
				if _, seen := m.BuiltinPolicies[key]; !seen && kt.policies[c] != "" {
					if m.BuiltinPolicies == nil {
						m.BuiltinPolicies = map[string]string{}
					}
					m.BuiltinPolicies[key] = kt.policies[c]
				}
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c, pol)
		}
		// Built-in chains sipwall no longer sets get their old policy back.
		for _, c := range kt.order {
			key := f.v + " " + t + " " + c
			if old, ok := m.BuiltinPolicies[key]; ok && builtins[c] {
				if _, still := nt.policies[c]; !still {
					fmt.Fprintf(&b, ":%s %s [0:0]\n", c, old)
					delete(m.BuiltinPolicies, key)
				}
			}
		}
		// Hook jumps: exactly one per wanted jump.
		have := map[string]int{}
		for _, r := range kt.rules {
			if c, tgt, ok := jumpTarget(r); ok && builtins[c] && strings.HasPrefix(tgt, ownPrefix) {
				have[c+" "+tgt]++
			}
		}
		wanted := map[string]bool{}
		for _, r := range nt.rules {
			if c, tgt, ok := jumpTarget(r); ok && builtins[c] {
				wanted[c+" "+tgt] = true
				if have[c+" "+tgt] == 0 {
					b.WriteString(r + "\n")
				}
			}
		}
		keys := make([]string, 0, len(have))
		for k := range have {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			extra := have[k]
			if wanted[k] {
				extra--
			}
			c, tgt, _ := strings.Cut(k, " ")
			for i := 0; i < extra; i++ {
				fmt.Fprintf(&b, "-D %s -j %s\n", c, tgt)
			}
		}
		for _, r := range nt.rules {
			if c, _, ok := jumpTarget(r); ok && builtins[c] {
				continue
			}
			b.WriteString(r + "\n")
		}
		var stale []string
		for _, c := range kernelOwn {
			if _, ok := nt.policies[c]; !ok {
				stale = append(stale, c)
			}
		}
		for _, c := range stale {
			fmt.Fprintf(&b, "-F %s\n", c)
		}
		for _, c := range stale {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// Install loads rules.v4, rules.v6 and ipsets. Sets come first (rules
// refer to them); existing sets keep their entries. If either family's
// restore fails, sipwall's part of both families is put back as it was,
// the tables this apply created are removed, and so are the sets it
// created: the kernel holds exactly what it held before.
func (b *Backend) Install(ctx context.Context, rs backend.Ruleset, _ []backend.Set, m *backend.Memory) error {
	return b.install(ctx, rs, m)
}

func (b *Backend) install(ctx context.Context, rs backend.Ruleset, m *backend.Memory) error {
	files := rs.Files
	static := map[string]bool{}
	for _, s := range rs.Sets {
		static[s.Name] = s.Static
	}
	created, err := b.ensureSets(ctx, files["ipsets"], static)
	if err != nil {
		return err
	}
	type before struct {
		tables  map[string]*iptTable
		existed map[string]bool
	}
	done := map[string]before{}
	undo := func() {
		for _, f := range families {
			if s, ok := done[f.v]; ok {
				b.revert(ctx, f, s.tables, s.existed)
			}
		}
		for _, s := range created {
			b.run.Run(ctx, nil, "ipset", "destroy", s)
		}
	}
	saved := cloneMap(m.BuiltinPolicies)
	for _, f := range families {
		if files[f.file] == "" && !b.hasOwn(ctx, f) {
			continue
		}
		existed := b.tablesExisting(ctx, f)
		kernel, err := b.kernelTables(ctx, f)
		if err != nil {
			undo()
			return err
		}
		done[f.v] = before{kernel, existed}
		input := restoreInput(f, files[f.file], kernel, m)
		if _, err := b.run.Run(ctx, strings.NewReader(input), f.restore, "--noflush"); err != nil {
			undo()
			m.BuiltinPolicies = saved
			return fmt.Errorf("%s refused the IPv%s rules, nothing changed: %w", f.restore, f.v, err)
		}
		if m.CreatedTables == nil {
			m.CreatedTables = map[string]bool{}
		}
		for t, ok := range existed {
			key := f.v + " " + t
			if !ok && !m.CreatedTables[key] {
				m.CreatedTables[key] = true
			}
		}
		// Built-in chains iptables-nft creates when sipwall declares them.
		after := b.tablesExisting(ctx, f)
		for k := range after {
			if strings.Contains(k, " ") && !existed[k] {
				m.CreatedTables[f.v+" "+k] = true
			}
		}
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// hasOwn reports whether the kernel holds sipwall chains for a family.
func (b *Backend) hasOwn(ctx context.Context, f family) bool {
	for _, t := range managedTables {
		out, err := b.run.Run(ctx, nil, f.save, "-t", t)
		if err == nil && strings.Contains(out, ":"+ownPrefix) {
			return true
		}
	}
	return false
}

// ensureSets creates the sets that are missing, migrates (keeping entries
// and their remaining timeouts) the ones whose size or default timeout
// changed, and refills the policy's static sets. It returns the sets it
// created.
func (b *Backend) ensureSets(ctx context.Context, rendered string, isStatic map[string]bool) ([]string, error) {
	if rendered == "" {
		return nil, nil
	}
	exists, err := b.setNames(ctx)
	if err != nil {
		return nil, err
	}
	want, err := parseSave(rendered)
	if err != nil {
		return nil, err
	}
	var script strings.Builder
	var created []string
	for _, set := range want {
		name := set.name
		create := func(as string) {
			fmt.Fprintf(&script, "create %s %s %s\n", as, set.typ, strings.Join(set.opts, " "))
			for _, e := range set.entries {
				script.WriteString(strings.TrimSpace("add "+as+" "+e.addr+" "+e.line) + "\n")
			}
		}
		switch {
		case !exists[name]:
			create(name)
			created = append(created, name)
		case isStatic[name]:
			tmp := name + "-new"
			create(tmp)
			fmt.Fprintf(&script, "swap %s %s\ndestroy %s\n", tmp, name, tmp)
		default:
			same, err := b.sameHeader(ctx, set)
			if err != nil {
				return nil, err
			}
			if !same {
				if err := b.migrate(ctx, set); err != nil {
					return nil, err
				}
			}
		}
	}
	if script.Len() > 0 {
		if _, err := b.run.Run(ctx, strings.NewReader(script.String()), "ipset", "restore"); err != nil {
			for _, s := range created {
				b.run.Run(ctx, nil, "ipset", "destroy", s)
			}
			return nil, fmt.Errorf("ipset refused the sets, nothing changed: %w", err)
		}
	}
	return created, nil
}

// sameHeader reports whether the kernel's set has want's size, default
// timeout, family and comment extension.
func (b *Backend) sameHeader(ctx context.Context, want *savedSet) (bool, error) {
	have, err := b.save(ctx, want.name)
	if err != nil || len(have) != 1 {
		return false, err
	}
	for _, k := range []string{"maxelem", "timeout", "family"} {
		if have[0].option(k) != want.option(k) {
			return false, nil
		}
	}
	return have[0].flag("comment") == want.flag("comment"), nil
}

// migrate re-creates a set with new options and the old entries (with their
// remaining timeouts), then swaps it in: rules keep pointing at the name.
func (b *Backend) migrate(ctx context.Context, want *savedSet) error {
	have, err := b.save(ctx, want.name)
	if err != nil {
		return err
	}
	tmp := want.name + "-new"
	var script strings.Builder
	fmt.Fprintf(&script, "create %s %s %s\n", tmp, want.typ, strings.Join(want.opts, " "))
	for _, set := range have {
		for _, e := range set.entries {
			script.WriteString(strings.TrimSpace("add "+tmp+" "+e.addr+" "+e.line) + "\n")
		}
	}
	fmt.Fprintf(&script, "swap %s %s\ndestroy %s\n", tmp, want.name, tmp)
	if _, err := b.run.Run(ctx, strings.NewReader(script.String()), "ipset", "-exist", "restore"); err != nil {
		b.run.Run(ctx, nil, "ipset", "destroy", tmp)
		return fmt.Errorf("ipset: migrate %s: %w", want.name, err)
	}
	return nil
}

// Uninstall removes sipwall's chains and jumps, restores the built-in
// policies and removes the tables sipwall created; the sets (and the lists
// in them) are kept.
func (b *Backend) Uninstall(ctx context.Context, m *backend.Memory) error {
	if err := b.install(ctx, backend.Ruleset{Files: map[string]string{}}, m); err != nil {
		return err
	}
	for _, f := range families {
		existed := map[string]bool{}
		for _, t := range managedTables {
			existed[t] = !m.CreatedTables[f.v+" "+t]
			for c := range builtins {
				existed[t+" "+c] = !m.CreatedTables[f.v+" "+t+" "+c]
			}
		}
		if err := b.dropCreatedTables(ctx, f, existed); err != nil {
			return err
		}
	}
	m.CreatedTables = nil
	return nil
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// Fingerprint lists sipwall's chains, jumps and built-in policies.
func (b *Backend) Fingerprint(ctx context.Context) (string, error) {
	var out strings.Builder
	for _, f := range families {
		for _, t := range managedTables {
			text, err := b.run.Run(ctx, nil, f.save, "-t", t)
			if err != nil {
				return "", err
			}
			tab := parseIPT(text)[t]
			if tab == nil {
				continue
			}
			for _, c := range tab.order {
				if strings.HasPrefix(c, ownPrefix) || builtins[c] {
					fmt.Fprintf(&out, "%s %s :%s %s\n", f.v, t, c, tab.policies[c])
				}
			}
			for _, r := range tab.rules {
				c := strings.Fields(r)[1]
				_, tgt, isJump := jumpTarget(r)
				if strings.HasPrefix(c, ownPrefix) || (isJump && strings.HasPrefix(tgt, ownPrefix)) {
					fmt.Fprintf(&out, "%s %s %s\n", f.v, t, counters.ReplaceAllString(r, ""))
				}
			}
		}
	}
	return out.String(), nil
}
