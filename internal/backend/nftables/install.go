package nftables

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/system"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// Install replaces the table in one `nft -f` transaction that also re-adds
// the elements of the lists (with their remaining timeouts), so a re-apply
// or a rollback unbans nobody and locks out no admitted phone. If nft
// refuses the script, the kernel keeps the previous table untouched.
func (b *Backend) Install(ctx context.Context, rs backend.Ruleset, old []backend.Set, _ *backend.Memory) error {
	script, ok := rs.Files["sipwall.nft"]
	if !ok {
		return fmt.Errorf("nftables: no sipwall.nft in the ruleset")
	}
	carried, err := b.carry(rs.Sets, old)
	if err != nil {
		return err
	}
	if _, err := b.run.Run(ctx, strings.NewReader(script+carried), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nftables refused the ruleset, nothing changed: %w", err)
	}
	return nil
}

// carry returns `add element` lines for the current contents of every list
// the new ruleset holds too. An element goes to the new set of its list,
// family and kind (address or network): a list split into an address set
// and a -net set, or joined again on a rollback, keeps its entries. Where
// the old shapes are unknown the kernel's are read.
func (b *Backend) carry(sets, old []backend.Set) (string, error) {
	if old == nil {
		var err error
		if old, err = b.ReadSets(context.Background()); err != nil {
			return "", err
		}
	}
	var entries []backend.Entry
	timeout := map[backend.Entry]time.Duration{}
	err := system.Do(b.h.NS, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		table := &nftables.Table{Name: nft.Table, Family: nftables.TableFamilyINet}
		if ok, err := tableExists(c); err != nil || !ok {
			return err // no table yet: nothing to carry
		}
		have, err := c.GetSets(table)
		if err != nil {
			return err
		}
		exists := map[string]bool{}
		for _, s := range have {
			exists[s.Name] = true
		}
		for _, s := range old {
			if s.Static || !exists[s.Name] {
				continue
			}
			els, err := c.GetSetElements(&nftables.Set{Table: table, Name: s.Name, Interval: s.Networks})
			if err != nil {
				return fmt.Errorf("set %s: %w", s.Name, err)
			}
			es, ts, err := setEntries(s.List, s.Networks, els)
			if err != nil {
				return fmt.Errorf("set %s: %w", s.Name, err)
			}
			for i, e := range es {
				timeout[e] = ts[i]
			}
			entries = append(entries, es...)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("nftables: read the lists: %w", nlError(err))
	}
	if sets == nil {
		// A generation recorded without its sets (an older sipwall's):
		// its sets are taken to be those the kernel has.
		sets = old
	}
	var keep []backend.Entry
	for _, e := range entries {
		if s, err := backend.SetFor(sets, e.List, e.Prefix); err == nil && !s.Static {
			keep = append(keep, e)
		}
	}
	sets2, by := bySet(sets, keep)
	var out strings.Builder
	for _, s := range sets2 {
		fmt.Fprintf(&out, "add element inet %s %s { ", nft.Table, s.Name)
		for i, e := range by[s.Name] {
			if i > 0 {
				out.WriteString(", ")
			}
			out.WriteString(backend.FormatPrefix(e.Prefix))
			if e.Remaining > 0 {
				t := max(timeout[e], e.Remaining).Truncate(time.Second)
				fmt.Fprintf(&out, " timeout %ds expires %ds", int64(t/time.Second), int64(e.Remaining/time.Second))
			}
			if e.Comment != "" {
				out.WriteString(" comment " + nft.Quote(e.Comment))
			}
		}
		out.WriteString(" }\n")
	}
	return out.String(), nil
}

// Uninstall deletes table inet sipwall.
func (b *Backend) Uninstall(ctx context.Context, _ *backend.Memory) error {
	_, err := b.run.Run(ctx, strings.NewReader(fmt.Sprintf("table inet %s\ndelete table inet %s\n", nft.Table, nft.Table)), "nft", "-f", "-")
	return err
}

var (
	nftElements = regexp.MustCompile(`(?s)\n\t\telements = \{.*?\}\n`)
	nftCounter  = regexp.MustCompile(`counter packets \d+ bytes \d+`)
)

// Fingerprint is the kernel's listing of the table without set contents
// and counters; "" when the table does not exist.
func (b *Backend) Fingerprint(ctx context.Context) (string, error) {
	out, err := b.run.Run(ctx, nil, "nft", "list", "table", "inet", nft.Table)
	if err != nil {
		if backend.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	out = nftElements.ReplaceAllString(out, "\n")
	return nftCounter.ReplaceAllString(out, "counter"), nil
}
