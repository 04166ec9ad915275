package lists

import (
	"context"
	"net/netip"
	"sort"
	"strings"

	"github.com/sipwall/sipwall/internal/apply"
)

// DeleteFlows deletes the conntrack flows from or to any of prefixes and
// returns how many there were. Without it a banned source's established
// UDP SIP flow would go on matching "established" rules (the common
// complaint about fail2ban's bans).
//
// It lists the table once (`conntrack -L`, both families) and deletes by
// address the flows it found, which also covers networks with one command
// per address actually seen, however many prefixes were banned.
func DeleteFlows(ctx context.Context, r apply.Runner, prefixes []netip.Prefix) (int, error) {
	if len(prefixes) == 0 {
		return 0, nil
	}
	out, err := r.Run(ctx, nil, "conntrack", "-L")
	if err != nil {
		return 0, err
	}
	m := newMatcher(prefixes)
	srcs, dsts := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	flows := 0
	for _, line := range strings.Split(out, "\n") {
		src, dst, ok := flowAddrs(line)
		if !ok {
			continue
		}
		hit := false
		if m.match(src) {
			srcs[src], hit = true, true
		}
		if m.match(dst) {
			dsts[dst], hit = true, true
		}
		if hit {
			flows++
		}
	}
	var firstErr error
	del := func(flag string, set map[netip.Addr]bool) {
		addrs := make([]netip.Addr, 0, len(set))
		for a := range set {
			addrs = append(addrs, a)
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		for _, a := range addrs {
			argv := []string{"conntrack", "-D", flag, a.String()}
			if a.Is6() {
				argv = append(argv, "-f", "ipv6")
			}
			_, err := r.Run(ctx, nil, argv...)
			// conntrack exits 1 when no flow was left to delete.
			if err != nil && !strings.Contains(err.Error(), "0 flow entries") && firstErr == nil {
				firstErr = err
			}
		}
	}
	del("-s", srcs)
	del("-d", dsts)
	return flows, firstErr
}

// flowAddrs returns the original direction's addresses of a `conntrack -L` line.
func flowAddrs(line string) (src, dst netip.Addr, ok bool) {
	var s, d string
	for _, f := range strings.Fields(line) {
		if v, found := strings.CutPrefix(f, "src="); found && s == "" {
			s = v
		} else if v, found := strings.CutPrefix(f, "dst="); found && d == "" {
			d = v
		}
	}
	src, err1 := netip.ParseAddr(s)
	dst, err2 := netip.ParseAddr(d)
	if err1 != nil || err2 != nil {
		return netip.Addr{}, netip.Addr{}, false
	}
	return src.Unmap(), dst.Unmap(), true
}

// matcher tells whether an address is inside any of a set of prefixes:
// single addresses by map, networks by a scan (they are few).
type matcher struct {
	hosts map[netip.Addr]bool
	nets  []netip.Prefix
}

func newMatcher(prefixes []netip.Prefix) *matcher {
	m := &matcher{hosts: map[netip.Addr]bool{}}
	for _, p := range prefixes {
		if p.IsSingleIP() {
			m.hosts[p.Addr()] = true
		} else {
			m.nets = append(m.nets, p.Masked())
		}
	}
	return m
}

func (m *matcher) match(a netip.Addr) bool {
	if m.hosts[a] {
		return true
	}
	for _, n := range m.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
