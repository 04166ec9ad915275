package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"sort"
	"strconv"
	"strings"
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

// listName turns a set name into the list name of the report:
// sipwall-scanners4 and scanners6 are both "scanners".
func listName(set string) string {
	set = strings.TrimPrefix(set, "sipwall-")
	return strings.TrimRight(set, "46")
}

// reportedLists are the lists a source can land in; rate-limit sets are
// bookkeeping, not lists.
var reportedLists = map[string]bool{"banned": true, "scanners": true, "trapped": true, "admitted": true, "allowed": true}

// ipsetMembers parses `ipset save`.
func ipsetMembers(save string) membership {
	m := membership{}
	sc := bufio.NewScanner(strings.NewReader(save))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "add" && reportedLists[listName(f[1])] {
			m.add(f[2], listName(f[1]))
		}
	}
	return m
}

// nftMembers parses `nft -j list table inet sipwall`.
func nftMembers(listing string) membership {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	m := membership{}
	if json.Unmarshal([]byte(listing), &doc) != nil {
		return m
	}
	for _, o := range doc.Nftables {
		if o.Set == nil || !reportedLists[listName(o.Set.Name)] {
			continue
		}
		for _, raw := range o.Set.Elem {
			if k := nftElem(raw); k != "" {
				m.add(k, listName(o.Set.Name))
			}
		}
	}
	return m
}

// nftElem decodes one set element of nft's JSON: "1.2.3.4",
// {"prefix": {"addr": …, "len": …}}, {"range": [lo, hi]} or
// {"elem": {"val": one of those, "timeout": …}}.
func nftElem(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Elem *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return ""
	}
	switch {
	case o.Elem != nil:
		return nftElem(o.Elem.Val)
	case o.Prefix != nil:
		p, err := netip.ParsePrefix(o.Prefix.Addr + "/" + strconv.Itoa(o.Prefix.Len))
		if err != nil {
			return ""
		}
		return p.String()
	case len(o.Range) == 2:
		return o.Range[0] + "-" + o.Range[1]
	}
	return ""
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

// readLists reads the lists of the firewall in ns.
func readLists(ctx context.Context, ns string, kind firewall) membership {
	switch kind {
	case fwIPTables:
		out, _ := run(ctx, ns, "ipset", "save")
		return ipsetMembers(out)
	case fwNFTables:
		out, _ := run(ctx, ns, "nft", "-j", "list", "table", "inet", "sipwall")
		return nftMembers(out)
	case fwArticle:
		files := map[string]string{}
		for _, n := range articleLists {
			files[n], _ = run(ctx, ns, "cat", "/proc/net/xt_recent/"+n)
		}
		return recentMembers(files)
	}
	return membership{}
}
