package cli

import (
	"context"
	"os"
	"strings"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/audit"
	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/policy"
)

// policyExposure reads a policy for the audit (loaded and validated as by
// every other command): what it admits from outside, and the applied
// ruleset's state from sipwall's state directory.
func policyExposure(ctx context.Context, path string) (*audit.Exposure, audit.FirewallState, error) {
	p, err := policy.LoadFile(path)
	if err != nil {
		return nil, nil, err
	}
	exp := exposureOf(p)
	dir := os.Getenv("SIPWALL_STATE_DIR")
	if dir == "" {
		dir = apply.DefaultStateDir
	}
	st, err := apply.LoadState(dir)
	if err == nil && st.Current != nil {
		exp.Backend = string(st.Current.Backend)
	}
	return exp, firewallState{m: manager(dir)}, nil
}

// exposureOf is what a policy admits from outside and whom it trusts.
func exposureOf(p *policy.Policy) *audit.Exposure {
	pe := p.Exposure()
	exp := &audit.Exposure{
		Profile:       audit.ProfileSipwall,
		IPv6:          p.IPv6,
		DefaultAccept: pe.DefaultAccept,
		TCPPorts:      portRanges(pe.TCP),
		UDPPorts:      portRanges(pe.UDP),
		TrapTCPPorts:  portRanges(pe.TrapTCP),
	}
	for _, n := range append(append([]policy.Prefix(nil), p.Trusted.All...), p.Trusted.SIP...) {
		exp.Trusted = append(exp.Trusted, n.Prefix)
	}
	for _, h := range p.Trusted.Hosts {
		exp.TrustedHosts = append(exp.TrustedHosts, h.Name)
	}
	exp.KnockSIP = p.SIP.Mode == policy.ModeHostname || p.SIP.Mode == policy.ModeUserAgent
	return exp
}

func portRanges(ps []policy.Port) []audit.PortRange {
	var out []audit.PortRange
	for _, p := range ps {
		out = append(out, audit.PortRange{First: p.From, Last: p.To})
	}
	return out
}

// firewallState reports the applied ruleset to the audit.
type firewallState struct{ m *apply.Manager }

func (f firewallState) FirewallStatus(ctx context.Context) (audit.FirewallStatus, error) {
	var out audit.FirewallStatus
	s, err := f.m.Status(ctx)
	if err != nil {
		return out, err
	}
	if s.Current == nil {
		return out, nil
	}
	out.Applied = s.Current.Fingerprint != ""
	if s.Drift {
		out.Drift = strings.Split(s.DriftDetail, "\n")
	}
	store, err := lists.Open(ctx, f.m.StateDir, f.m.Host)
	if err != nil {
		return out, err
	}
	// The lists' entries, counted by the kernel set that holds them.
	count := map[string]int{}
	var names []string
	read := map[string]bool{}
	for _, set := range store.Sets {
		if set.Static {
			continue
		}
		names = append(names, set.Name)
		if read[set.List] {
			continue
		}
		read[set.List] = true
		es, err := store.Kernel.Read(ctx, set.List)
		if err != nil {
			return out, err
		}
		for _, e := range es {
			if in, err := backend.SetFor(store.Sets, e.List, e.Prefix); err == nil {
				count[in.Name]++
			}
		}
	}
	for _, n := range names {
		out.Lists = append(out.Lists, audit.ListStatus{Name: n, Entries: count[n], Saved: -1})
	}
	return out, nil
}
