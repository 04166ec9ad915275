package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/system"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// The nftables lists are changed over netlink (github.com/google/nftables):
// one change is one batch of NEWSETELEM/DELSETELEM messages sent with one
// Flush, which the kernel applies as one transaction, all or nothing. The
// nft tool reads the whole set into its cache before every change (over a
// second for one element into a set of 100,000); netlink does not read.
//
// nlConn is a netlink connection to nftables in one namespace.
type nlConn struct {
	c     *nftables.Conn
	table *nftables.Table
	sets  []backend.Set
}

// withNetlink runs fn with a netlink connection opened in namespace ns (""
// for the current one) and sized for a batch of about batchBytes bytes in
// about messages messages. The connection is opened inside netns.Do, so
// its socket belongs to ns.
func (st *store) withNetlink(batchBytes, messages int, fn func(*nlConn) error) error {
	run := func() error {
		c, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
			// The whole batch goes to the kernel in one message (a
			// transaction cannot span two), and every message of it is
			// acknowledged: size both buffers for it, as nft does.
			// Without CAP_NET_ADMIN the limits stay the system's; the
			// kernel then refuses a batch too large (EMSGSIZE).
			c.SetWriteBuffer(max(batchBytes+(1<<16), 1<<20))
			c.SetReadBuffer(max(messages*2048+(1<<18), 1<<20))
			// Acknowledgements without a copy of the message refused.
			c.SetOption(netlink.CapAcknowledge, true)
			return nil
		}))
		if err != nil {
			return fmt.Errorf("nftables: netlink: %w", err)
		}
		defer c.CloseLasting()
		return fn(&nlConn{c: c, table: &nftables.Table{Name: nft.Table, Family: nftables.TableFamilyINet}, sets: st.sets})
	}
	return system.Do(st.ns, run)
}

// nset is the netlink description of set s.
func (n *nlConn) nset(s backend.Set) *nftables.Set {
	return &nftables.Set{Table: n.table, Name: s.Name, HasTimeout: true, Interval: s.Networks}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nlElements are the set elements of e: its address, or for a network
// (which goes to an interval set) the start of its interval and the end
// (the address after the last one; none when the interval reaches the top
// of the address space). A timeout and a comment go on the start only: the kernel refuses
// a timeout on an interval's end.
func nlElements(e backend.Entry, extras, interval bool) []nftables.SetElement {
	start := nftables.SetElement{Key: e.Prefix.Addr().AsSlice()}
	if extras {
		if e.Remaining > 0 {
			start.Timeout = max(e.Remaining.Truncate(time.Second), time.Second)
		}
		start.Comment = e.Comment
	}
	els := []nftables.SetElement{start}
	if interval {
		if next := lastAddr(e.Prefix).Next(); next.IsValid() {
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// elementBytes bounds the netlink size of a set element.
func elementBytes(el nftables.SetElement) int {
	return 64 + len(el.Key) + len(el.Comment)
}

// maxMessageBytes bounds one message's element list: its length is a
// 16-bit netlink attribute length.
const maxMessageBytes = 48 << 10

// nlOp is one message of a batch: add or delete elements of a set.
type nlOp struct {
	del  bool
	set  *nftables.Set
	elms []nftables.SetElement
}

// nlBatch builds a batch of messages.
type nlBatch struct {
	n       *nlConn
	flushes []backend.Set // sets emptied first
	ops     []nlOp
	bytes   int
}

// put appends elements of entries to the batch, by set in name order,
// split into messages that fit.
func (b *nlBatch) put(del, extras bool, entries []backend.Entry) {
	sets, m := bySet(b.n.sets, entries)
	for _, set := range sets {
		es := m[set.Name]
		s := b.n.nset(set)
		var cur []nftables.SetElement
		size := 0
		for _, e := range es {
			for _, el := range nlElements(e, extras, set.Networks) {
				if size+elementBytes(el) > maxMessageBytes {
					b.ops = append(b.ops, nlOp{del, s, cur})
					cur, size = nil, 0
				}
				cur = append(cur, el)
				size += elementBytes(el)
				b.bytes += elementBytes(el)
			}
		}
		if len(cur) > 0 {
			b.ops = append(b.ops, nlOp{del, s, cur})
		}
	}
}

// flush sends the batch as one transaction.
func (b *nlBatch) flush() error {
	for _, s := range b.flushes {
		b.n.c.FlushSet(b.n.nset(s))
	}
	for _, op := range b.ops {
		var err error
		if op.del {
			err = b.n.c.SetDeleteElements(op.set, op.elms)
		} else {
			err = b.n.c.SetAddElements(op.set, op.elms)
		}
		if err != nil {
			return err
		}
	}
	return b.n.c.Flush()
}

// plan sizes a batch before the connection exists: the bytes and messages
// of the batch fill would build.
func (st *store) plan(fill func(*nlBatch)) (int, int) {
	b := &nlBatch{n: &nlConn{table: &nftables.Table{}, sets: st.sets}}
	fill(b)
	return b.bytes + 128*len(b.ops), len(b.ops)
}

// send opens a connection in ns, builds the batch with fill and flushes it.
func (st *store) sendBatch(fill func(*nlBatch)) error {
	bytes, msgs := st.plan(fill)
	return st.withNetlink(bytes, msgs, func(n *nlConn) error {
		b := &nlBatch{n: n}
		fill(b)
		return b.flush()
	})
}

// exactFill deletes drop and the entries listed already, then adds entries.
// (The kernel refuses the add-delete-add sequence for a network right after
// deleting an address inside it in the same transaction.)
func exactFill(entries, drop []backend.Entry, have map[netip.Prefix]map[string]bool) func(*nlBatch) {
	for _, e := range entries {
		if have[e.Prefix][e.List] {
			drop = append(drop, e)
		}
	}
	return func(b *nlBatch) {
		b.put(true, false, drop)
		b.put(false, true, entries)
	}
}

// isOverlap reports whether the kernel refused an interval that overlaps
// one already listed (EEXIST: the kernel turns its ENOTEMPTY into it).
func isOverlap(err error) bool { return errors.Is(err, unix.EEXIST) }

// lookupMax is the largest batch whose entries are looked up one by one
// in the kernel (GETSETELEM, as `nft get element`) before the change;
// larger batches read the sets concerned instead.
const lookupMax = 16

// nlAdd puts entries in over netlink in namespace ns, in one transaction.
//
// A small batch of addresses (a single ban) reads no set: each address is
// looked up in the kernel, which answers for one key with the element or
// the interval holding it; an address of banned or allowed is looked up in
// the list's -net set (the networks) and then in its hash set. An address
// inside a network already listed is left out
// with a warning; one listed already is replaced with add (it is there),
// delete, add again with the new timeout and comment (an add alone keeps an
// existing element's timeout and comment); a new one is only added. This
// matters for speed: a transaction that deletes an element waits for the
// kernel (an RCU grace period, 8-25 ms), one that only adds does not; so
// an address banned again with a timeout and the same comment is only
// added again, which since Linux 6.10 gives the element the new timeout
// (an older kernel keeps the old one: that is checked, and the element
// replaced then).
//
// A larger batch, one with a network of banned or allowed (the addresses it
// replaces are in the hash set, which only a read finds), or one the
// kernel refuses as overlapping what is listed (an interval set refuses
// the overlap, EEXIST), reads the sets concerned over netlink and deletes
// what it replaces before adding, as the nft path does.
func (st *store) add(entries []backend.Entry) (int, []string, error) {
	if len(entries) <= lookupMax && !st.anyTwinnedNet(entries) {
		var (
			keep, present, refresh []backend.Entry
			warnings               []string
			known                  bool
			done                   int // entries already added
		)
		err := st.withNetlink(0, 0, func(n *nlConn) error {
			var lerr error
			keep, present, refresh, warnings, known, lerr = n.lookup(entries)
			return lerr
		})
		if err != nil {
			return 0, nil, nlError(err)
		}
		if len(present) > 0 {
			// The batch deletes anyway: replace them all.
			present = append(present, refresh...)
		} else if known && len(refresh) > 0 {
			// Only adds: the kernel gives the elements listed already
			// their new timeout, unless it is older than 6.10; those it
			// left alone are replaced below.
			if err := st.sendBatch(func(b *nlBatch) { b.put(false, true, keep) }); err != nil {
				return 0, nil, nlError(err)
			}
			var stale []backend.Entry
			err := st.withNetlink(0, 0, func(*nlConn) error {
				var rerr error
				stale, rerr = refreshed(st.sets, refresh)
				return rerr
			})
			if err != nil {
				return 0, nil, nlError(err)
			}
			if len(stale) == 0 {
				return len(keep), warnings, nil
			}
			done = len(keep) - len(stale)
			keep, present = stale, stale
		}
		if known {
			if len(keep) == 0 {
				return 0, warnings, nil
			}
			err := st.sendBatch(func(b *nlBatch) {
				b.put(false, false, present)
				b.put(true, false, present)
				b.put(false, true, keep)
			})
			if err == nil {
				return done + len(keep), warnings, nil
			}
			if !isOverlap(err) {
				return 0, nil, nlError(err)
			}
		}
	}
	// Read the sets concerned, then change exactly.
	var have []backend.Entry
	err := st.withNetlink(0, 0, func(n *nlConn) error {
		var rerr error
		have, rerr = n.read(entries)
		return rerr
	})
	if err != nil {
		return 0, nil, nlError(err)
	}
	keep, drop, exact, warnings := resolve(entries, have, st.outlivesInTwin)
	if len(keep) == 0 {
		return 0, warnings, nil
	}
	if err := st.sendBatch(exactFill(keep, drop, exact)); err != nil {
		return 0, nil, nlError(err)
	}
	return len(keep), warnings, nil
}

// outlivesInTwin reports whether h, an address listed in the hash set of a
// list kept in two sets, stays listed longer than e, a network going into
// the list's other set: then both stay, and the longer ban is not cut short.
func (st *store) outlivesInTwin(h, e backend.Entry) bool {
	if !h.Prefix.IsSingleIP() || e.Prefix.IsSingleIP() || !backend.Outlives(h, e) {
		return false
	}
	hs, err1 := backend.SetFor(st.sets, h.List, h.Prefix)
	es, err2 := backend.SetFor(st.sets, e.List, e.Prefix)
	return err1 == nil && err2 == nil && hs.Name != es.Name
}

// anyTwinnedNet reports whether entries hold a network of a list kept in
// two sets: the addresses it replaces are in the other set, which only a
// read finds.
func (st *store) anyTwinnedNet(entries []backend.Entry) bool {
	for _, e := range entries {
		if e.Prefix.IsSingleIP() {
			continue
		}
		if s, err := backend.SetFor(st.sets, e.List, e.Prefix); err == nil {
			if _, twin := backend.Twin(st.sets, s); twin {
				return true
			}
		}
	}
	return false
}

// del deletes entries, all present, in one transaction.
func (st *store) del(entries []backend.Entry) error {
	if err := st.sendBatch(func(b *nlBatch) { b.put(true, false, entries) }); err != nil {
		return nlError(err)
	}
	return nil
}

// lookup asks the kernel about each entry: keep are the entries to add
// (present those of them listed already, to replace; refresh those listed
// already that an add alone can update), warnings the entries left out
// because a wider network holds them. known is false when an answer needs
// the set read (a listed network narrower than the entry at its address).
func (n *nlConn) lookup(entries []backend.Entry) (keep, present, refresh []backend.Entry, warnings []string, known bool, err error) {
	conn, err := dialLookup()
	if err != nil {
		return nil, nil, nil, nil, false, err
	}
	defer conn.Close()
	for _, e := range entries {
		w, info, ok, err := n.holding(conn, e)
		if err != nil {
			return nil, nil, nil, nil, false, err
		}
		switch {
		case !ok:
			keep = append(keep, e)
		case w == e.Prefix:
			keep = append(keep, e)
			// The kernel (6.10 and later) updates the timeout of an
			// element added again, not its comment; a timeout cannot
			// be taken away that way either.
			if e.Prefix.IsSingleIP() && e.Remaining > 0 && info.comment == e.Comment {
				refresh = append(refresh, e)
			} else {
				present = append(present, e)
			}
		case w.Bits() < e.Prefix.Bits() && w.Contains(e.Prefix.Addr()):
			warnings = append(warnings, fmt.Sprintf("%s is already listed inside %s (list %s)", e.Addr(), backend.FormatPrefix(w), e.List))
		default:
			return nil, nil, nil, nil, false, nil
		}
	}
	return keep, present, refresh, warnings, true, nil
}

// dialLookup opens the socket for GETSETELEM requests.
func dialLookup() (*netlink.Conn, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	// The kernel answers at once; a deadline keeps a lost answer from
	// hanging a ban.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, nil
}

// refreshed returns the entries of refresh whose element the kernel did
// not give the new timeout on an add alone (a kernel before 6.10 keeps
// the old one): their expiry must be at least the new timeout less 1 s.
// It asks in the calling thread's namespace (inside withNetlink).
func refreshed(sets []backend.Set, refresh []backend.Entry) ([]backend.Entry, error) {
	conn, err := dialLookup()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var stale []backend.Entry
	for _, e := range refresh {
		set, err := backend.SetFor(sets, e.List, e.Prefix)
		if err != nil {
			return nil, err
		}
		info, ok, err := getElement(conn, set.Name, e.Prefix.Addr(), false)
		if err != nil {
			return nil, err
		}
		if !ok || info.timeout != e.Remaining.Truncate(time.Second) || info.expires < e.Remaining-time.Second {
			stale = append(stale, e)
		}
	}
	return stale, nil
}

// holding returns the entry listed in e's set that holds e's address, as
// `nft get element` finds it: the kernel answers a GETSETELEM for a key
// with the element, or in an interval set with the start of the interval
// holding it, and, asked for an interval end, with the end after it.
func (n *nlConn) holding(conn *netlink.Conn, e backend.Entry) (netip.Prefix, elemInfo, bool, error) {
	// An address of a list kept in two sets is looked for in the
	// networks first: one of them holding it wins.
	set, err := backend.SetFor(n.sets, e.List, e.Prefix)
	if err != nil {
		return netip.Prefix{}, elemInfo{}, false, err
	}
	if t, ok := backend.Twin(n.sets, set); ok && t.Networks && e.Prefix.IsSingleIP() {
		w, info, ok, err := n.holdingIn(conn, t, e.Prefix.Addr())
		if err != nil || ok {
			return w, info, ok, err
		}
	}
	return n.holdingIn(conn, set, e.Prefix.Addr())
}

// holdingIn returns the entry of set that holds a, and what the kernel says of its
// element (of its start, for an interval).
func (n *nlConn) holdingIn(conn *netlink.Conn, set backend.Set, a netip.Addr) (netip.Prefix, elemInfo, bool, error) {
	name := set.Name
	start, ok, err := getElement(conn, name, a, false)
	if err != nil || !ok {
		return netip.Prefix{}, elemInfo{}, false, err
	}
	if !set.Networks {
		return netip.PrefixFrom(start.key, start.key.BitLen()), start, true, nil
	}
	end, ok, err := getElement(conn, name, a, true)
	if err != nil {
		return netip.Prefix{}, elemInfo{}, false, err
	}
	last := netip.Addr{}
	if ok {
		last = end.key.Prev()
	} else {
		last = lastAddr(netip.PrefixFrom(a, 0))
	}
	p, ok := rangePrefix(start.key, last)
	if !ok || !p.Contains(a) {
		return netip.Prefix{}, elemInfo{}, false, nil
	}
	return p, start, true, nil
}

// rangePrefix returns the network that is exactly first..last.
func rangePrefix(first, last netip.Addr) (netip.Prefix, bool) {
	for bits := first.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() != first {
			break
		}
		if lastAddr(p) == last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// getElement asks the kernel for the element of set name matching a (an
// interval's start, or with end its end); ok is false when there is none.
func getElement(conn *netlink.Conn, set string, a netip.Addr, end bool) (elemInfo, bool, error) {
	key, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: a.AsSlice()}})
	el := []netlink.Attribute{{Type: unix.NFTA_SET_ELEM_KEY | unix.NLA_F_NESTED, Data: key}}
	if end {
		el = append(el, netlink.Attribute{Type: unix.NFTA_SET_ELEM_FLAGS, Data: binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END)})
	}
	elb, _ := netlink.MarshalAttributes(el)
	list, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: 1 | unix.NLA_F_NESTED, Data: elb}})
	data, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(nft.Table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED, Data: list},
	})
	// With an acknowledgement requested: the kernel sends nothing else
	// when it finds no interval end (the last interval of the space).
	req, err := conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return elemInfo{}, false, err
	}
	var (
		found elemInfo
		ok    bool
	)
	for {
		msgs, err := conn.Receive()
		if errors.Is(err, unix.ENOENT) {
			return elemInfo{}, false, nil
		}
		if err != nil {
			return elemInfo{}, false, err
		}
		for _, m := range msgs {
			if m.Header.Sequence != req.Header.Sequence {
				continue
			}
			if m.Header.Type == netlink.Error {
				return found, ok, nil
			}
			if len(m.Data) < 4 {
				continue
			}
			if info, got := firstElem(m.Data[4:]); got && info.isEnd == end {
				found, ok = info, true
			}
		}
	}
}

// elemInfo is what the kernel says of a set element.
type elemInfo struct {
	key     netip.Addr
	isEnd   bool // an interval's end
	timeout time.Duration
	expires time.Duration
	comment string
}

// firstElem decodes the first element of a NEWSETELEM message's
// attributes.
func firstElem(b []byte) (elemInfo, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return elemInfo{}, false
	}
	var (
		info  elemInfo
		found bool
	)
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			if !list.Next() {
				return nil
			}
			list.Nested(func(el *netlink.AttributeDecoder) error {
				el.ByteOrder = binary.BigEndian
				for el.Next() {
					switch el.Type() {
					case unix.NFTA_SET_ELEM_KEY:
						el.Nested(func(k *netlink.AttributeDecoder) error {
							for k.Next() {
								if k.Type() == unix.NFTA_DATA_VALUE {
									info.key, found = netip.AddrFromSlice(k.Bytes())
								}
							}
							return nil
						})
					case unix.NFTA_SET_ELEM_FLAGS:
						info.isEnd = el.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
					case unix.NFTA_SET_ELEM_TIMEOUT:
						info.timeout = time.Duration(el.Uint64()) * time.Millisecond
					case unix.NFTA_SET_ELEM_EXPIRATION:
						info.expires = time.Duration(el.Uint64()) * time.Millisecond
					case unix.NFTA_SET_ELEM_USERDATA:
						info.comment, _ = userdata.GetString(el.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
					}
				}
				return nil
			})
			return nil
		})
	}
	return info, found && ad.Err() == nil
}

// read returns the entries of the lists that entries go to (both sets of
// a list kept in two), read over netlink: only for a large batch, a new
// network of banned or allowed, or an overlap the kernel refused.
func (n *nlConn) read(entries []backend.Entry) ([]backend.Entry, error) {
	type ls struct {
		list string
		f    ir.Family
	}
	seen := map[ls]bool{}
	var out []backend.Entry
	for _, e := range entries {
		k := ls{e.List, backend.FamilyOf(e.Prefix)}
		if seen[k] {
			continue
		}
		seen[k] = true
		for _, set := range backend.SetsOf(n.sets, k.list) {
			if set.Family != k.f {
				continue
			}
			s := n.nset(set)
			els, err := n.c.GetSetElements(s)
			if err != nil {
				return nil, err
			}
			got, _, err := setEntries(k.list, s.Interval, els)
			if err != nil {
				return nil, fmt.Errorf("nftables: set %s: %w", s.Name, err)
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// setEntries turns a set's elements into entries (and their elements'
// timeouts); in an interval set each
// start is followed, in key order, by its end (none at the top of the
// address space).
func setEntries(list string, interval bool, els []nftables.SetElement) ([]backend.Entry, []time.Duration, error) {
	type el struct {
		a nftables.SetElement
		k netip.Addr
	}
	var sorted []el
	for _, x := range els {
		k, ok := netip.AddrFromSlice(x.Key)
		if !ok {
			return nil, nil, fmt.Errorf("unexpected key %x", x.Key)
		}
		sorted = append(sorted, el{x, k})
	}
	sort.Slice(sorted, func(i, j int) bool {
		if c := sorted[i].k.Compare(sorted[j].k); c != 0 {
			return c < 0
		}
		return sorted[i].a.IntervalEnd && !sorted[j].a.IntervalEnd
	})
	var out []backend.Entry
	var timeouts []time.Duration
	for i, x := range sorted {
		if x.a.IntervalEnd {
			continue
		}
		p := netip.PrefixFrom(x.k, x.k.BitLen())
		if interval {
			last := lastAddr(netip.PrefixFrom(x.k, 0))
			if i+1 < len(sorted) && sorted[i+1].a.IntervalEnd {
				last = sorted[i+1].k.Prev()
			}
			var ok bool
			if p, ok = rangePrefix(x.k, last); !ok {
				return nil, nil, fmt.Errorf("interval %s-%s is not a network", x.k, last)
			}
		}
		e := backend.Entry{List: list, Prefix: p, Comment: x.a.Comment}
		if x.a.Timeout > 0 || x.a.Expires > 0 {
			e.Remaining = max(x.a.Expires.Truncate(time.Second), time.Second)
		}
		out = append(out, e)
		timeouts = append(timeouts, x.a.Timeout)
	}
	return out, timeouts, nil
}

// errNoEnt is the kernel's "no such table, set or element".
var errNoEnt = unix.ENOENT

// nlError says what a refusal of the kernel means; nothing was changed.
func nlError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("nftables: a list's set is missing from table inet %s (run sipwall apply); nothing changed: %w: %w", nft.Table, backend.ErrNotFound, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.E2BIG), errors.Is(err, unix.ENFILE):
		return fmt.Errorf("nftables: the set is full; nothing changed: %w: %w", backend.ErrFull, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("nftables: this kernel lacks a feature the lists need (set timeouts or comments); nothing changed: %w: %w", backend.ErrUnsupported, err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("nftables: the change overlaps an entry already listed; nothing changed: %w: %w", backend.ErrExist, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("nftables: changing the lists needs CAP_NET_ADMIN; nothing changed: %w", err)
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("nftables: the change is too large for one netlink transaction (split it); nothing changed: %w", err)
	case errors.Is(err, syscall.ENOBUFS):
		// The batch was sent but the kernel's answer overflowed the
		// socket: whether it committed is unknown.
		return fmt.Errorf("nftables: the kernel's answer was lost; the change may or may not have landed (check with sipwall lists): %w", err)
	}
	return fmt.Errorf("nftables refused the change; nothing changed: %w", err)
}

// Lookup implements backend.Looker: each set of lists is asked for a
// (GETSETELEM, as `nft get element`), so the answer does not depend on the
// size of the sets (a dump of a set of a million elements takes the
// kernel minutes: it walks the set from its start for each message).
func (st *store) Lookup(ctx context.Context, lists []string, a netip.Addr) ([]backend.Entry, error) {
	a = a.Unmap()
	f := backend.FamilyOf(netip.PrefixFrom(a, a.BitLen()))
	var out []backend.Entry
	err := st.withNetlink(0, 0, func(n *nlConn) error {
		conn, err := dialLookup()
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, l := range lists {
			for _, set := range backend.SetsOf(st.sets, l) {
				if set.Family != f {
					continue
				}
				p, info, ok, err := n.holdingIn(conn, set, a)
				if err != nil {
					return err
				}
				if ok {
					out = append(out, backend.Entry{List: l, Prefix: p, Remaining: info.expires, Comment: info.comment})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nlError(err)
	}
	return out, nil
}
