// Package iptables is the iptables backend: sipwall's chains loaded with
// iptables-restore --noflush (IPv4 and IPv6), the lists in ipsets changed
// with `ipset restore`, the counters read from iptables-save. Every tool
// runs through system.Exec, in the host's network namespace.
package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/conntrack"
	"github.com/sipwall/sipwall/internal/backend/system"
	"github.com/sipwall/sipwall/internal/ir"
	render "github.com/sipwall/sipwall/internal/render/iptables"
)

func init() {
	backend.Register(backend.IPTables, func(h backend.Host) backend.Backend { return New(h) })
}

// Backend manages sipwall's chains (sipwall-*), the jumps to them from
// the built-in chains, the built-in policies, and the sipwall-* ipsets.
// Other tools' chains and rules are never flushed: rules go in with
// iptables-restore --noflush.
type Backend struct {
	h   backend.Host
	run system.Exec
}

// New returns the iptables backend acting on h.
func New(h backend.Host) *Backend { return &Backend{h: h, run: system.Exec{NS: h.NS}} }

// Name implements backend.Backend.
func (b *Backend) Name() backend.Name { return backend.IPTables }

// MaxTimeout is ipset's longest timeout: the ipset tool refuses more than
// 2147483 s (the kernel's jiffies-based limit, about 24.8 days).
func (b *Backend) MaxTimeout() time.Duration { return 2147483 * time.Second }

// Sets names the ruleset's sets as render/iptables does: sipwall-NAME4 and
// sipwall-NAME6, every one a hash:net.
func (b *Backend) Sets(rs *ir.Ruleset) []backend.Set { return backend.Instances(rs, render.SetName) }

// ForgetFlows implements backend.Backend.
func (b *Backend) ForgetFlows(_ context.Context, prefixes []netip.Prefix) (int, error) {
	return conntrack.Delete(b.h.NS, prefixes)
}

// countRules counts the rules of an iptables-save listing.
func countRules(save string) int {
	n := 0
	for _, t := range parseIPT(save) {
		n += len(t.rules)
	}
	return n
}

// Claim: rules in iptables-legacy win over everything (nft cannot see
// them); rules other tools wrote with iptables-nft come after native
// nftables tables.
func (b *Backend) Claim(ctx context.Context) backend.Claim {
	if _, err := b.run.Run(ctx, nil, "iptables-restore", "--version"); err != nil {
		return backend.Claim{Rank: backend.ClaimMissing, Why: "iptables is not installed"}
	}
	if out, err := b.run.Run(ctx, nil, "iptables-legacy-save"); err == nil {
		if n := countRules(out); n > 0 {
			return backend.Claim{Rank: backend.ClaimLegacy, Why: fmt.Sprintf("the host's rules are in iptables-legacy (%d rules)", n)}
		}
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if out, err := b.run.Run(ctx, nil, save); err == nil {
			if n := countRules(out); n > 0 {
				return backend.Claim{Rank: backend.ClaimCompat, Why: fmt.Sprintf("the host's rules are managed with iptables (%d rules in %s, fail2ban or Docker perhaps)", n, save)}
			}
		}
	}
	return backend.Claim{Rank: backend.ClaimNone, Why: "no iptables rules"}
}
