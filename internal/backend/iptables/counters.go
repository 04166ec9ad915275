package iptables

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
)

var ruleComment = regexp.MustCompile(`--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))`)

// Counters reads the counters of the rules in sipwall's chains, IPv4 then
// IPv6, raw then filter, in the kernel's order.
func (b *Backend) Counters(ctx context.Context) ([]backend.Counter, error) {
	all, err := b.AllCounters(ctx)
	if err != nil {
		return nil, err
	}
	var out []backend.Counter
	for _, c := range all {
		if !c.Policy && strings.HasPrefix(c.Chain, ownPrefix) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("iptables: no sipwall rules in the kernel: run sipwall apply: %w", backend.ErrNotLoaded)
	}
	return out, nil
}

// verdicts are the iptables targets that decide, by the Counter's name.
var verdicts = map[string]string{"DROP": "drop", "ACCEPT": "accept", "REJECT": "reject"}

// AllCounters reads the counters of every rule and base chain policy of
// the raw and filter tables, sipwall's or not (the lab compares rulesets
// that are not sipwall's), IPv4 then IPv6.
func (b *Backend) AllCounters(ctx context.Context) ([]backend.Counter, error) {
	var out []backend.Counter
	for _, f := range families {
		fam := ir.IPv4
		if f.v == "6" {
			fam = ir.IPv6
		}
		for _, t := range managedTables {
			text, err := b.run.Run(ctx, nil, f.save, "-c", "-t", t)
			if err != nil {
				return nil, fmt.Errorf("iptables: counters: %w", err)
			}
			tab := parseIPT(text)[t]
			if tab == nil {
				continue
			}
			for _, chain := range tab.order {
				if pc, ok := tab.policyCounts[chain]; ok && builtins[chain] {
					out = append(out, backend.Counter{Family: fam, Table: t, Chain: chain, File: f.file, Policy: true,
						Verdict: verdicts[tab.policies[chain]], Packets: pc[0], Bytes: pc[1]})
				}
			}
			pos := map[string]int{}
			for i, r := range tab.rules {
				fields := strings.Fields(r)
				pos[fields[1]]++
				c := backend.Counter{Family: fam, Table: t, Chain: fields[1], File: f.file, Position: pos[fields[1]],
					Packets: tab.counts[i][0], Bytes: tab.counts[i][1]}
				if m := ruleComment.FindStringSubmatch(r); m != nil {
					c.Comment = m[1] + m[2]
				}
				for j := 2; j+1 < len(fields); j++ {
					if fields[j] == "-j" || fields[j] == "-g" {
						if v, ok := verdicts[fields[j+1]]; ok {
							c.Verdict = v
						} else if tab.policies[fields[j+1]] != "" {
							c.Verdict = "jump"
						}
					}
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}
