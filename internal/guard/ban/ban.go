// Package ban puts addresses into sipwall's kernel lists and takes them
// out again, for the backend that is applied: nftables sets of `table inet
// sipwall` over netlink (github.com/google/nftables), or ipsets through the
// ipset tool. It also forgets the conntrack flows of a banned source, so a
// ban cuts connections that were already established.
//
// Lists are named as in package compile (compile.SetBanned, SetScanners,
// SetAdmitted, SetAllowed…); the family suffix and the backend's prefix are
// added here. Fake records what it is asked and prints it as text, for the
// tests of code that bans.
package ban

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/iptables"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// Banner adds addresses to and removes them from the kernel lists.
type Banner interface {
	// Add puts addr into list for timeout (0: the list's default, which is
	// forever for banned and scanners). Adding an address already there is
	// not an error.
	Add(ctx context.Context, list string, addr netip.Addr, timeout time.Duration) error
	// Remove takes addr out of list; an absent address is not an error.
	Remove(ctx context.Context, list string, addr netip.Addr) error
}

func family(a netip.Addr) ir.Family {
	if a.Unmap().Is4() {
		return ir.IPv4
	}
	return ir.IPv6
}

// intervalLists are the nftables sets with the interval flag (they hold
// networks): an address goes in as a one-address interval. The addresses
// of the banned and allowed lists go to their hash sets; only the networks
// put there by hand are in the -net interval sets.
var intervalLists = map[string]bool{compile.SetBannedNet: true, compile.SetAllowedNet: true, compile.SetTrusted: true}

// NFT writes to the sets of `table inet sipwall` over netlink.
type NFT struct {
	mu    sync.Mutex
	conn  *nftables.Conn
	table *nftables.Table
}

// NewNFT opens a netlink connection to nftables in the calling thread's
// network namespace (the connection stays in it).
func NewNFT() (*NFT, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("ban: nftables: %w", err)
	}
	return &NFT{conn: c, table: &nftables.Table{Name: "sipwall", Family: nftables.TableFamilyINet}}, nil
}

// Close closes the netlink connection.
func (n *NFT) Close() error { return n.conn.CloseLasting() }

func (n *NFT) set(list string, a netip.Addr) *nftables.Set {
	kt := nftables.TypeIPAddr
	if family(a) == ir.IPv6 {
		kt = nftables.TypeIP6Addr
	}
	return &nftables.Set{
		Table: n.table, Name: nft.SetName(list, family(a)), KeyType: kt,
		HasTimeout: true, Interval: intervalLists[list],
	}
}

// elements returns the set elements for one address: the address, and for
// an interval set the end of its one-address interval.
func elements(s *nftables.Set, a netip.Addr, timeout time.Duration) []nftables.SetElement {
	a = a.Unmap()
	els := []nftables.SetElement{{Key: a.AsSlice(), Timeout: timeout}}
	if s.Interval {
		if next := a.Next(); next.IsValid() {
			// The kernel refuses a timeout on an interval's end.
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// Add implements Banner.
func (n *NFT) Add(_ context.Context, list string, a netip.Addr, timeout time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.set(list, a)
	if err := n.conn.SetAddElements(s, elements(s, a, timeout)); err != nil {
		return fmt.Errorf("ban: add %s to %s: %w", a, s.Name, err)
	}
	if err := n.conn.Flush(); err != nil {
		// An address inside a network already listed (an interval
		// set refuses the overlap) is listed already.
		if strings.Contains(err.Error(), "file exists") {
			return nil
		}
		return fmt.Errorf("ban: add %s to %s: %w", a, s.Name, err)
	}
	return nil
}

// Remove implements Banner.
func (n *NFT) Remove(_ context.Context, list string, a netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.set(list, a)
	if err := n.conn.SetDeleteElements(s, elements(s, a, 0)); err != nil {
		return fmt.Errorf("ban: remove %s from %s: %w", a, s.Name, err)
	}
	if err := n.conn.Flush(); err != nil {
		if strings.Contains(err.Error(), "no such file") {
			return nil
		}
		return fmt.Errorf("ban: remove %s from %s: %w", a, s.Name, err)
	}
	return nil
}

// IPSet writes to sipwall's ipsets with the ipset tool.
type IPSet struct {
	Runner apply.Runner
}

// Add implements Banner.
func (x IPSet) Add(ctx context.Context, list string, a netip.Addr, timeout time.Duration) error {
	a = a.Unmap()
	argv := []string{"ipset", "add", iptables.SetName(list, family(a)), a.String()}
	if timeout > 0 {
		argv = append(argv, "timeout", fmt.Sprint(max(int64(timeout/time.Second), 1)))
	}
	if _, err := x.Runner.Run(ctx, nil, append(argv, "-exist")...); err != nil {
		return fmt.Errorf("ban: %w", err)
	}
	return nil
}

// Remove implements Banner.
func (x IPSet) Remove(ctx context.Context, list string, a netip.Addr) error {
	a = a.Unmap()
	if _, err := x.Runner.Run(ctx, nil, "ipset", "del", iptables.SetName(list, family(a)), a.String(), "-exist"); err != nil {
		return fmt.Errorf("ban: %w", err)
	}
	return nil
}

// ForgetFlows deletes the conntrack entries whose source is a, so that a
// ban also ends flows already established. It returns nil when there were
// none.
func ForgetFlows(ctx context.Context, r apply.Runner, a netip.Addr) error {
	a = a.Unmap()
	argv := []string{"conntrack", "-D", "-s", a.String()}
	if a.Is6() {
		argv = append(argv, "-f", "ipv6")
	}
	_, err := r.Run(ctx, nil, argv...)
	if err != nil && strings.Contains(err.Error(), "0 flow entries") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ban: conntrack: %w", err)
	}
	return nil
}

// Fake is a Banner that keeps the lists in memory.
type Fake struct {
	mu    sync.Mutex
	lists map[string]map[netip.Addr]time.Duration
	// Err, when set, is returned by every call.
	Err error
}

// Add implements Banner.
func (f *Fake) Add(_ context.Context, list string, a netip.Addr, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	if f.lists == nil {
		f.lists = map[string]map[netip.Addr]time.Duration{}
	}
	if f.lists[list] == nil {
		f.lists[list] = map[netip.Addr]time.Duration{}
	}
	f.lists[list][a.Unmap()] = timeout
	return nil
}

// Remove implements Banner.
func (f *Fake) Remove(_ context.Context, list string, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	delete(f.lists[list], a.Unmap())
	return nil
}

// Has reports whether a is in list.
func (f *Fake) Has(list string, a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.lists[list][a.Unmap()]
	return ok
}

// String prints the lists, one "list address timeout" line per entry,
// sorted.
func (f *Fake) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for l, m := range f.lists {
		for a, t := range m {
			ts := "default"
			if t > 0 {
				ts = t.String()
			}
			lines = append(lines, fmt.Sprintf("%s %s %s", l, a, ts))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
