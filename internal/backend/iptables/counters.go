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
			pos := map[string]int{}
			for i, r := range tab.rules {
				chain := strings.Fields(r)[1]
				pos[chain]++
				if !strings.HasPrefix(chain, ownPrefix) {
					continue
				}
				c := backend.Counter{Family: fam, Table: t, Chain: chain, File: f.file, Position: pos[chain],
					Packets: tab.counts[i][0], Bytes: tab.counts[i][1]}
				if m := ruleComment.FindStringSubmatch(r); m != nil {
					c.Comment = m[1] + m[2]
				}
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("iptables: no sipwall rules in the kernel: run sipwall apply: %w", backend.ErrNotLoaded)
	}
	return out, nil
}
