package iptables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
)

// ipsetOwn is the prefix of sipwall's ipsets.
const ipsetOwn = "sipwall-"

// savedSet is one set of `ipset save` output: its create line's options
// and its entries.
type savedSet struct {
	name, typ string
	opts      []string // after the type: "family inet hashsize 1024 …"
	entries   []savedEntry
}

type savedEntry struct {
	addr    string
	timeout int // seconds; -1 when the line has none
	comment string
	line    string // the rest of the line after the address
}

// option returns the value after key in the create options ("" if none).
func (s *savedSet) option(key string) string {
	for i := 0; i+1 < len(s.opts); i++ {
		if s.opts[i] == key {
			return s.opts[i+1]
		}
	}
	return ""
}

func (s *savedSet) flag(f string) bool {
	for _, o := range s.opts {
		if o == f {
			return true
		}
	}
	return false
}

// parseSave parses `ipset save` output (or the create and add lines of a
// rendered ipsets file): the one place that reads ipset's text.
func parseSave(out string) ([]*savedSet, error) {
	var sets []*savedSet
	byName := map[string]*savedSet{}
	var last *savedSet
	for len(out) > 0 {
		line := out
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			out = ""
		}
		if rest, ok := strings.CutPrefix(line, "add "); ok {
			// The hot path: a million entries are a million of these.
			name, rest, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
			s := last
			if s == nil || s.name != name {
				s = byName[name]
			}
			if s == nil {
				continue
			}
			last = s
			addr, rest, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
			if addr == "" {
				continue
			}
			e := savedEntry{addr: addr, timeout: -1, line: strings.TrimSpace(rest)}
			if _, t, ok := strings.Cut(" "+e.line, " timeout "); ok {
				t, _, _ = strings.Cut(strings.TrimLeft(t, " "), " ")
				n, err := strconv.Atoi(t)
				if err != nil {
					return nil, fmt.Errorf("ipset: set %s: bad timeout in %q", name, line)
				}
				e.timeout = n
			}
			if _, c, ok := strings.Cut(line, ` comment "`); ok {
				e.comment, _, _ = strings.Cut(c, `"`)
			}
			s.entries = append(s.entries, e)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "create" {
			continue
		}
		s := &savedSet{name: f[1], typ: f[2], opts: f[3:]}
		sets = append(sets, s)
		byName[s.name] = s
	}
	return sets, nil
}

// setNames lists the names of the kernel's ipsets.
func (b *Backend) setNames(ctx context.Context) (map[string]bool, error) {
	out, err := b.run.Run(ctx, nil, "ipset", "list", "-n")
	if err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	names := map[string]bool{}
	for _, n := range strings.Fields(out) {
		names[n] = true
	}
	return names, nil
}

// save reads sets (every set when none is named) with `ipset save`.
func (b *Backend) save(ctx context.Context, names ...string) ([]*savedSet, error) {
	var all []*savedSet
	if len(names) == 0 {
		names = []string{""}
	}
	for _, n := range names {
		argv := []string{"ipset", "save"}
		if n != "" {
			argv = append(argv, n)
		}
		out, err := b.run.Run(ctx, nil, argv...)
		if err != nil {
			return nil, ipsetError(err)
		}
		sets, err := parseSave(out)
		if err != nil {
			return nil, err
		}
		all = append(all, sets...)
	}
	return all, nil
}

// ReadSets returns the shapes of sipwall's ipsets in the kernel, for a
// state file written before the shapes were recorded. An ipset does not
// say which list it holds: the name does (sipwall-LIST4, sipwall-LIST6).
func (b *Backend) ReadSets(ctx context.Context) ([]backend.Set, error) {
	names, err := b.setNames(ctx)
	if err != nil {
		return nil, err
	}
	var own []string
	for n := range names {
		if strings.HasPrefix(n, ipsetOwn) && !strings.HasSuffix(n, "-new") {
			own = append(own, n)
		}
	}
	sort.Strings(own)
	var out []backend.Set
	for _, n := range own {
		sets, err := b.save(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, s := range sets {
			base := strings.TrimPrefix(s.name, ipsetOwn)
			f := ir.IPv4
			if s.option("family") == "inet6" {
				f = ir.IPv6
			}
			list := strings.TrimRight(base, "46")
			size, _ := strconv.Atoi(s.option("maxelem"))
			timeout, _ := strconv.Atoi(s.option("timeout"))
			out = append(out, backend.Set{
				Name: s.name, List: list, IRName: list, Family: f,
				Networks: list == "banned" || list == "allowed" || list == "trusted",
				Static:   list == "trusted", Size: size, Timeout: time.Duration(timeout) * time.Second,
			})
		}
	}
	return out, nil
}

// Store returns the set store over sets.
func (b *Backend) Store(sets []backend.Set) backend.SetStore { return &ipsetStore{b: b, sets: sets} }

// ipsetStore keeps the lists in the sipwall-* ipsets. A change is one
// `ipset -exist restore`; sipwall checks every entry before it starts, so
// the kernel refuses nothing but a full set (ipset applies the lines before
// a failing one, unlike nft).
type ipsetStore struct {
	b    *Backend
	sets []backend.Set
}

func (s *ipsetStore) Read(ctx context.Context, lists ...string) ([]backend.Entry, error) {
	want := map[string]string{}
	var names []string
	for _, l := range lists {
		ls := backend.SetsOf(s.sets, l)
		if len(ls) == 0 {
			return nil, fmt.Errorf("ipset: the applied ruleset has no set for the %s list: %w", l, backend.ErrNoSet)
		}
		for _, set := range ls {
			want[set.Name] = l
			names = append(names, set.Name)
		}
	}
	all, err := s.b.save(ctx)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var entries []backend.Entry
	for _, set := range all {
		list, ok := want[set.name]
		if !ok {
			continue
		}
		found[set.name] = true
		for _, e := range set.entries {
			p, err := parsePrefix(e.addr)
			if err != nil {
				return nil, fmt.Errorf("ipset: set %s: %w", set.name, err)
			}
			en := backend.Entry{List: list, Prefix: p, Comment: e.comment}
			if e.timeout > 0 {
				en.Remaining = time.Duration(e.timeout) * time.Second
			}
			entries = append(entries, en)
		}
	}
	for _, n := range names {
		if !found[n] {
			return nil, fmt.Errorf("ipset: set %s does not exist: run sipwall apply: %w", n, backend.ErrNotLoaded)
		}
	}
	return entries, nil
}

// parsePrefix parses an address or network as ipset prints it.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("unexpected element %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("unexpected element %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// quote writes a comment the way ipset reads it.
func quote(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ").Replace(s) + `"`
}

// addLine is an `add SET ADDR [timeout N] [comment "…"]` line; no timeout
// gives the set's default.
func addLine(w *strings.Builder, set string, e backend.Entry, comments bool) {
	fmt.Fprintf(w, "add %s %s", set, backend.FormatPrefix(e.Prefix))
	if e.Remaining > 0 {
		fmt.Fprintf(w, " timeout %d", max(int64(e.Remaining/time.Second), 1))
	}
	if comments && e.Comment != "" {
		w.WriteString(" comment " + quote(e.Comment))
	}
	w.WriteString("\n")
}

func (s *ipsetStore) script(entries []backend.Entry, comments bool) (string, error) {
	var w strings.Builder
	for _, e := range entries {
		set, err := backend.SetFor(s.sets, e.List, e.Prefix)
		if err != nil {
			return "", err
		}
		addLine(&w, set.Name, e, comments)
	}
	return w.String(), nil
}

// Add implements backend.SetStore. ipset's hash:net keeps an address and
// a network holding it side by side: nothing is left out or replaced.
func (s *ipsetStore) Add(ctx context.Context, entries []backend.Entry) (int, []string, error) {
	script, err := s.script(entries, true)
	if err != nil {
		return 0, nil, err
	}
	_, err = s.b.run.Run(ctx, strings.NewReader(script), "ipset", "-exist", "restore")
	if err == nil {
		return len(entries), nil, nil
	}
	if !errors.Is(err, backend.ErrUnsupported) {
		return 0, nil, ipsetError(err)
	}
	// Sets created without the comment extension.
	script, _ = s.script(entries, false)
	if _, err := s.b.run.Run(ctx, strings.NewReader(script), "ipset", "-exist", "restore"); err != nil {
		return 0, nil, ipsetError(err)
	}
	return len(entries), []string{"reason not stored: the applied ipsets were created without the comment extension"}, nil
}

// Delete implements backend.SetStore.
func (s *ipsetStore) Delete(ctx context.Context, entries []backend.Entry) error {
	var w strings.Builder
	for _, e := range entries {
		set, err := backend.SetFor(s.sets, e.List, e.Prefix)
		if err != nil {
			return err
		}
		fmt.Fprintf(&w, "del %s %s\n", set.Name, backend.FormatPrefix(e.Prefix))
	}
	if _, err := s.b.run.Run(ctx, strings.NewReader(w.String()), "ipset", "-exist", "restore"); err != nil {
		return ipsetError(err)
	}
	return nil
}

// Replace implements backend.SetStore: each set of list is rebuilt under
// a temporary name and swapped in, all in one `ipset restore`.
func (s *ipsetStore) Replace(ctx context.Context, list string, entries []backend.Entry) error {
	sets := backend.SetsOf(s.sets, list)
	if len(sets) == 0 {
		return fmt.Errorf("ipset: the applied ruleset has no set for the %s list: %w", list, backend.ErrNoSet)
	}
	by := map[string][]backend.Entry{}
	for _, e := range entries {
		if e.List != list {
			return fmt.Errorf("ipset: replace %s: entry %s is for list %s", list, e.Addr(), e.List)
		}
		set, err := backend.SetFor(s.sets, list, e.Prefix)
		if err != nil {
			return err
		}
		by[set.Name] = append(by[set.Name], e)
	}
	// Every new set is filled before the first swap: a refusal (a full
	// set) leaves the list as it was.
	var w, swaps strings.Builder
	for _, set := range sets {
		tmp := set.Name + "-new"
		family := "inet"
		if set.Family == ir.IPv6 {
			family = "inet6"
		}
		fmt.Fprintf(&w, "create %s hash:net family %s hashsize 1024 maxelem %d timeout %d comment\n",
			tmp, family, set.Size, int(set.Timeout/time.Second))
		for _, e := range by[set.Name] {
			addLine(&w, tmp, e, true)
		}
		fmt.Fprintf(&swaps, "swap %s %s\ndestroy %s\n", tmp, set.Name, tmp)
	}
	w.WriteString(swaps.String())
	if _, err := s.b.run.Run(ctx, strings.NewReader(w.String()), "ipset", "restore"); err != nil {
		for _, set := range sets {
			s.b.run.Run(ctx, nil, "ipset", "destroy", set.Name+"-new")
		}
		return ipsetError(err)
	}
	return nil
}

func ipsetError(err error) error {
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return fmt.Errorf("ipset: a list's set is missing (run sipwall apply): %w", err)
	case errors.Is(err, backend.ErrFull):
		return fmt.Errorf("ipset: the set is full (maxelem); the entries before the failing line were added: %w", err)
	case errors.Is(err, backend.ErrUnsupported):
		return fmt.Errorf("ipset: this kernel lacks a feature the lists need: %w", err)
	}
	return fmt.Errorf("ipset refused the change: %w", err)
}

// DestroySets implements backend.SetDestroyer: it destroys sets and every
// other sipwall-* ipset, once sipwall's rules no longer refer to them.
func (b *Backend) DestroySets(ctx context.Context, sets []backend.Set) error {
	names, err := b.setNames(ctx)
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, s := range sets {
		mine[s.Name] = true
	}
	var doomed []string
	for n := range names {
		if strings.HasPrefix(n, ipsetOwn) || mine[n] {
			doomed = append(doomed, n)
		}
	}
	sort.Strings(doomed)
	var failed []string
	for _, n := range doomed {
		if _, err := b.run.Run(ctx, nil, "ipset", "destroy", n); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", n, ipsetError(err)))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("ipset: could not destroy %s", strings.Join(failed, ", "))
	}
	return nil
}

// Lookup implements backend.Looker: `ipset test` asks each set of a's
// family whether it holds a, and only the sets that do are read, for the
// entries' timeouts and comments.
func (s *ipsetStore) Lookup(ctx context.Context, lists []string, a netip.Addr) ([]backend.Entry, error) {
	a = a.Unmap()
	f := backend.FamilyOf(netip.PrefixFrom(a, a.BitLen()))
	var out []backend.Entry
	for _, l := range lists {
		for _, set := range backend.SetsOf(s.sets, l) {
			if set.Family != f {
				continue
			}
			if _, err := s.b.run.Run(ctx, nil, "ipset", "test", set.Name, a.String()); err != nil {
				if strings.Contains(err.Error(), "NOT in set") {
					continue
				}
				return nil, ipsetError(err)
			}
			saved, err := s.b.run.Run(ctx, nil, "ipset", "save", set.Name)
			if err != nil {
				return nil, ipsetError(err)
			}
			var lines strings.Builder
			for rest := saved; len(rest) > 0; {
				line := rest
				if i := strings.IndexByte(rest, '\n'); i >= 0 {
					line, rest = rest[:i], rest[i+1:]
				} else {
					rest = ""
				}
				f := strings.SplitN(line, " ", 4)
				if len(f) < 3 {
					continue
				}
				if f[0] == "create" {
					lines.WriteString(line + "\n")
					continue
				}
				if p, err := parsePrefix(f[2]); err == nil && p.Contains(a) {
					lines.WriteString(line + "\n")
				}
			}
			sets, err := parseSave(lines.String())
			if err != nil {
				return nil, err
			}
			for _, ss := range sets {
				for _, e := range ss.entries {
					p, err := parsePrefix(e.addr)
					if err != nil {
						return nil, fmt.Errorf("ipset: set %s: %w", ss.name, err)
					}
					en := backend.Entry{List: l, Prefix: p, Comment: e.comment}
					if e.timeout > 0 {
						en.Remaining = time.Duration(e.timeout) * time.Second
					}
					out = append(out, en)
				}
			}
		}
	}
	return out, nil
}
