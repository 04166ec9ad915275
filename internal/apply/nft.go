package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/sipwall/sipwall/internal/render/nft"
)

// nftBackend manages `table inet sipwall`.
type nftBackend struct{ r Runner }

var setDecl = regexp.MustCompile(`(?m)^\tset (\S+) \{`)

// install replaces the table in one `nft -f` transaction that also re-adds
// the elements of the lists (with their remaining timeouts), so a re-apply
// or a rollback unbans nobody and locks out no admitted phone. If nft
// refuses the script, the kernel keeps the previous table untouched.
func (b nftBackend) install(ctx context.Context, files map[string]string, _ *State) error {
	script, ok := files["sipwall.nft"]
	if !ok {
		return fmt.Errorf("nftables: no sipwall.nft in the ruleset")
	}
	carried, err := b.carry(ctx, script)
	if err != nil {
		return err
	}
	if _, err := b.r.Run(ctx, strings.NewReader(script+carried), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nftables refused the ruleset, nothing changed: %w", err)
	}
	return nil
}

// carry returns `add element` lines for the current contents of every list
// that the new script declares too.
func (b nftBackend) carry(ctx context.Context, script string) (string, error) {
	sets, err := ListNFTSets(ctx, b.r)
	if err != nil {
		return "", err
	}
	declared := map[string]bool{}
	for _, m := range setDecl.FindAllStringSubmatch(script, -1) {
		declared[m[1]] = true
	}
	// Elements go to the set of the same name, except across the split of
	// a list into an address set and a -net set (or back, on a rollback):
	// a network goes to the new script's -net set, and the elements of a
	// -net set the new script lacks to the list's own set.
	carried := map[string][]Element{}
	var order []string
	for _, s := range sets {
		if !carriedList(s.Name) {
			continue
		}
		for _, e := range s.Elements {
			to := carryTarget(s.Name, e, declared)
			if !declared[to] {
				continue
			}
			if carried[to] == nil {
				order = append(order, to)
			}
			carried[to] = append(carried[to], e)
		}
	}
	var out strings.Builder
	for _, name := range order {
		fmt.Fprintf(&out, "add element inet %s %s { ", nft.Table, name)
		for i, e := range carried[name] {
			if i > 0 {
				out.WriteString(", ")
			}
			out.WriteString(e.nftText())
		}
		out.WriteString(" }\n")
	}
	return out.String(), nil
}

// netSet matches the name of a list's -net set: banned-net4, allowed-net6.
var netSet = regexp.MustCompile(`^(.+)-net([46])$`)

// carryTarget is the set of the new script that element e of set name
// goes to.
func carryTarget(name string, e Element, declared map[string]bool) string {
	if m := netSet.FindStringSubmatch(name); m != nil {
		if !declared[name] {
			return m[1] + m[2]
		}
		return name
	}
	if strings.Contains(e.Prefix, "/") && len(name) > 1 {
		if twin := name[:len(name)-1] + "-net" + name[len(name)-1:]; declared[twin] {
			return twin
		}
	}
	return name
}

// carriedList reports whether a set holds a list whose entries must survive
// (the rate-limit sets and the policy's static trusted set do not).
func carriedList(name string) bool {
	return !strings.HasPrefix(name, "rate-") && !strings.HasPrefix(name, "trusted")
}

// Element is one entry of a list, as the kernel reports it.
type Element struct {
	// Prefix is an address or network ("192.0.2.1", "10.0.0.0/8").
	Prefix string `json:"addr"`
	// Timeout is the entry's lifetime in seconds (0: the set's default or none).
	Timeout int `json:"timeout,omitempty"`
	// Expires is the seconds left (0: never).
	Expires int    `json:"expires,omitempty"`
	Comment string `json:"comment,omitempty"`
}

func (e Element) nftText() string {
	s := e.Prefix
	if e.Timeout > 0 {
		s += fmt.Sprintf(" timeout %ds", e.Timeout)
	}
	if e.Expires > 0 {
		s += fmt.Sprintf(" expires %ds", e.Expires)
	}
	if e.Comment != "" {
		s += " comment " + quoteNFT(e.Comment)
	}
	return s
}

func quoteNFT(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ").Replace(s) + `"`
}

// NFTSet is a set of table inet sipwall and its elements.
type NFTSet struct {
	Name     string
	Timeout  int // the set's default timeout in seconds
	Elements []Element
}

// ListNFTSets reads every set of table inet sipwall; a missing table is no set.
func ListNFTSets(ctx context.Context, r Runner) ([]NFTSet, error) {
	out, err := r.Run(ctx, nil, "nft", "-j", "list", "table", "inet", nft.Table)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, nil
		}
		return nil, fmt.Errorf("nftables: read the lists: %w", err)
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name    string            `json:"name"`
				Timeout int               `json:"timeout"`
				Elem    []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nftables: cannot read nft's JSON: %w", err)
	}
	var sets []NFTSet
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		s := NFTSet{Name: o.Set.Name, Timeout: o.Set.Timeout}
		for _, raw := range o.Set.Elem {
			e, err := parseNFTElem(raw)
			if err != nil {
				return nil, fmt.Errorf("nftables: set %s: %w", s.Name, err)
			}
			s.Elements = append(s.Elements, e)
		}
		sets = append(sets, s)
	}
	return sets, nil
}

func parseNFTElem(raw json.RawMessage) (Element, error) {
	var wrapped struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Timeout int             `json:"timeout"`
			Expires int             `json:"expires"`
			Comment string          `json:"comment"`
		} `json:"elem"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Elem != nil {
		p, err := parseNFTVal(wrapped.Elem.Val)
		return Element{Prefix: p, Timeout: wrapped.Elem.Timeout, Expires: wrapped.Elem.Expires, Comment: wrapped.Elem.Comment}, err
	}
	p, err := parseNFTVal(raw)
	return Element{Prefix: p}, err
}

func parseNFTVal(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var v struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("unknown element %s", raw)
	}
	switch {
	case v.Prefix != nil:
		return fmt.Sprintf("%s/%d", v.Prefix.Addr, v.Prefix.Len), nil
	case len(v.Range) == 2:
		return v.Range[0] + "-" + v.Range[1], nil
	}
	return "", fmt.Errorf("unknown element %s", raw)
}

func (b nftBackend) uninstall(ctx context.Context, _ *State) error {
	_, err := b.r.Run(ctx, strings.NewReader(fmt.Sprintf("table inet %s\ndelete table inet %s\n", nft.Table, nft.Table)), "nft", "-f", "-")
	return err
}

var (
	nftElements = regexp.MustCompile(`(?s)\n\t\telements = \{.*?\}\n`)
	nftCounter  = regexp.MustCompile(`counter packets \d+ bytes \d+`)
)

// fingerprint is the kernel's listing of the table without set contents
// and counters; "" when the table does not exist.
func (b nftBackend) fingerprint(ctx context.Context) (string, error) {
	out, err := b.r.Run(ctx, nil, "nft", "list", "table", "inet", nft.Table)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return "", nil
		}
		return "", err
	}
	out = nftElements.ReplaceAllString(out, "\n")
	return nftCounter.ReplaceAllString(out, "counter"), nil
}
