// Package iptables is the iptables backend: sipwall's chains loaded with
// iptables-restore --noflush (IPv4 and IPv6), the lists in ipsets changed
// with `ipset restore`, the counters read from iptables-save. Every tool
// runs through system.Exec, in the host's network namespace.
package iptables

import (
	"context"
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

// MaxTimeout is the longest ipset timeout: ipset keeps timeouts in
// milliseconds in a 32-bit number.
func (b *Backend) MaxTimeout() time.Duration { return 4294967 * time.Second }

// Sets names the ruleset's sets as render/iptables does: sipwall-NAME4 and
// sipwall-NAME6, every one a hash:net.
func (b *Backend) Sets(rs *ir.Ruleset) []backend.Set {
	var out []backend.Set
	for _, s := range rs.Sets {
		for _, f := range []ir.Family{ir.IPv4, ir.IPv6} {
			if !s.Families.Has(f) || !rs.Families.Has(f) {
				continue
			}
			list := s.List
			if list == "" {
				list = s.Name
			}
			out = append(out, backend.Set{
				Name: render.SetName(s.Name, f), List: list, IRName: s.Name, Family: f,
				Networks: s.Interval, Dynamic: s.Dynamic, Static: s.Static,
				Timeout: s.Timeout, Size: s.Size,
			})
		}
	}
	return out
}

// ForgetFlows implements backend.Backend.
func (b *Backend) ForgetFlows(_ context.Context, prefixes []netip.Prefix) (int, error) {
	return conntrack.Delete(b.h.NS, prefixes)
}
