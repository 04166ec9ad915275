package cli

import (
	"context"
	"os"
	"strings"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/audit"
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
	pe := p.Exposure()
	exp := &audit.Exposure{
		Profile:       audit.ProfileSipwall,
		IPv6:          p.IPv6,
		DefaultAccept: pe.DefaultAccept,
		TCPPorts:      portRanges(pe.TCP),
		UDPPorts:      portRanges(pe.UDP),
		TrapTCPPorts:  portRanges(pe.TrapTCP),
	}
	dir := os.Getenv("SIPWALL_STATE_DIR")
	if dir == "" {
		dir = apply.DefaultStateDir
	}
	st, err := apply.LoadState(dir)
	if err == nil && st.Current != nil {
		exp.Backend = st.Current.Backend
	}
	return exp, firewallState{dir: dir, m: manager(dir)}, nil
}

func portRanges(ps []policy.Port) []audit.PortRange {
	var out []audit.PortRange
	for _, p := range ps {
		out = append(out, audit.PortRange{First: p.From, Last: p.To})
	}
	return out
}

// firewallState reports the applied ruleset to the audit.
type firewallState struct {
	dir string
	m   *apply.Manager
}

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
	// The lists' entries, read by the lists' store of the applied backend.
	store, err := lists.Open(f.dir, f.m.R)
	if err != nil {
		return out, err
	}
	entries, err := store.List(ctx)
	if err != nil {
		return out, err
	}
	count := map[string]int{}
	for _, e := range entries {
		count[e.List]++
	}
	for _, name := range lists.Names {
		out.Lists = append(out.Lists, audit.ListStatus{Name: name, Entries: count[name], Saved: -1})
	}
	return out, nil
}
