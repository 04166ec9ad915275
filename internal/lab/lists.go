package lab

import (
	"bufio"
	"context"
	"net/netip"
	"sort"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
	sipwalllists "github.com/sipwall/sipwall/internal/lists"
)

// membership maps an address to the lists (sets) of the server's firewall
// that hold it.
type membership map[string][]string

func (m membership) add(addr, list string) {
	a, err := netip.ParseAddr(addr)
	if err == nil {
		addr = a.String()
	}
	for _, l := range m[addr] {
		if l == list {
			return
		}
	}
	m[addr] = append(m[addr], list)
	sort.Strings(m[addr])
}

// of returns the lists that hold addr, or those of a prefix or range
// containing it.
func (m membership) of(addr string) []string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	var out []string
	for k, lists := range m {
		if matches(k, a) {
			out = append(out, lists...)
		}
	}
	sort.Strings(out)
	return dedup(out)
}

func matches(entry string, a netip.Addr) bool {
	if p, err := netip.ParsePrefix(entry); err == nil {
		return p.Contains(a)
	}
	if lo, hi, ok := strings.Cut(entry, "-"); ok {
		l, err1 := netip.ParseAddr(lo)
		h, err2 := netip.ParseAddr(hi)
		return err1 == nil && err2 == nil && l.Compare(a) <= 0 && a.Compare(h) <= 0
	}
	e, err := netip.ParseAddr(entry)
	return err == nil && e == a
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// entryMembers is the membership of sipwall's lists, as the set store
// reads them.
func entryMembers(entries []backend.Entry) membership {
	m := membership{}
	for _, e := range entries {
		m.add(e.Addr(), e.List)
	}
	return m
}

// articleLists are the article's xt_recent lists that hold sources.
var articleLists = []string{"BADSIP", "RLM", "MYSIP"}

// recentMembers parses /proc/net/xt_recent/NAME files.
func recentMembers(files map[string]string) membership {
	m := membership{}
	for name, text := range files {
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 && strings.HasPrefix(f[0], "src=") {
				m.add(strings.TrimPrefix(f[0], "src="), name)
			}
		}
	}
	return m
}

// readLists reads the lists of the server's firewall: sipwall's through
// the applied backend's set store, the article's from xt_recent. A
// firewall without lists (flushed) has none.
func (o *one) readLists(ctx context.Context) membership {
	switch o.kind {
	case fwIPTables, fwNFTables:
		s, err := sipwalllists.Open(ctx, o.stateDir(), backend.Host{NS: o.srv.ns})
		if err != nil {
			return membership{}
		}
		es, err := s.List(ctx)
		if err != nil {
			return membership{}
		}
		return entryMembers(es)
	case fwArticle:
		files := map[string]string{}
		for _, n := range articleLists {
			files[n], _ = run(ctx, o.srv.ns, "cat", "/proc/net/xt_recent/"+n)
		}
		return recentMembers(files)
	}
	return membership{}
}
