// Package conntrack deletes the connection-tracking flows of banned
// sources over netlink (github.com/ti-mo/conntrack). Without it a banned
// source's established UDP SIP flow would go on matching "established"
// rules, the common complaint about fail2ban's bans. Both backends use it:
// conntrack is the kernel's, whatever the ruleset.
package conntrack

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/sipwall/sipwall/internal/backend/system"
)

// Delete deletes the flows, of both families, whose original direction
// is from or to an address inside any of prefixes, in network namespace
// ns ("" the current one), and returns how many it deleted. It reads the
// table once and deletes each flow found; a flow that ended in between is
// not an error.
func Delete(ns string, prefixes []netip.Prefix) (int, error) {
	if len(prefixes) == 0 {
		return 0, nil
	}
	m := newMatcher(prefixes)
	n := 0
	err := system.Do(ns, func() error {
		c, err := conntrack.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		flows, err := c.Dump(nil)
		if err != nil {
			return err
		}
		var first error
		for _, f := range flows {
			ip := f.TupleOrig.IP
			if !m.match(ip.SourceAddress.Unmap()) && !m.match(ip.DestinationAddress.Unmap()) {
				continue
			}
			if err := c.Delete(f); err != nil {
				if !errors.Is(err, unix.ENOENT) && first == nil {
					first = err
				}
				continue
			}
			n++
		}
		return first
	})
	if err != nil {
		return n, fmt.Errorf("conntrack: %w", err)
	}
	return n, nil
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
			m.hosts[p.Addr().Unmap()] = true
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
