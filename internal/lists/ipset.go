package lists

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/iptables"
)

// ipsetBackend keeps the lists in the sipwall-* ipsets. A change is one
// `ipset -exist restore`; sipwall checks every entry before it starts, so
// the kernel refuses nothing but a full set (ipset applies the lines before
// a failing one, unlike nft).
type ipsetBackend struct{ r apply.Runner }

func (b ipsetBackend) read(ctx context.Context, lists []string) ([]Entry, error) {
	out, err := b.r.Run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, ipsetError(err)
	}
	want := map[string]string{}
	for _, l := range lists {
		for _, f := range []ir.Family{ir.IPv4, ir.IPv6} {
			want[iptables.SetName(l, f)] = l
		}
	}
	exists := map[string]bool{}
	var entries []Entry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		list, ok := want[f[1]]
		if !ok {
			continue
		}
		switch f[0] {
		case "create":
			exists[f[1]] = true
		case "add":
			e, err := parseIpsetAdd(list, line, f)
			if err != nil {
				return nil, fmt.Errorf("ipset: set %s: %w", f[1], err)
			}
			entries = append(entries, e)
		}
	}
	for _, l := range lists {
		if n := iptables.SetName(l, ir.IPv4); !exists[n] {
			return nil, fmt.Errorf("ipset: set %s does not exist: run sipwall apply", n)
		}
	}
	return entries, nil
}

// parseIpsetAdd parses `add SET ADDR [timeout N] [comment "TEXT"] …`.
func parseIpsetAdd(list, line string, f []string) (Entry, error) {
	p, err := parseKernelPrefix(f[2])
	if err != nil {
		return Entry{}, err
	}
	e := Entry{List: list, Prefix: p}
	for i := 3; i+1 < len(f); i++ {
		if f[i] == "timeout" {
			n, err := strconv.Atoi(f[i+1])
			if err != nil {
				return Entry{}, fmt.Errorf("bad timeout in %q", line)
			}
			e.Remaining = time.Duration(n) * time.Second
		}
	}
	if _, c, ok := strings.Cut(line, ` comment "`); ok {
		e.Comment, _, _ = strings.Cut(c, `"`)
	}
	return e, nil
}

func quoteIpset(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ").Replace(s) + `"`
}

func ipsetScript(entries []Entry, comments bool) string {
	var w strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&w, "add %s %s timeout %d", kernelName("iptables", e.List, family(e.Prefix)), FormatPrefix(e.Prefix), int64(e.Remaining/time.Second))
		if comments && e.Comment != "" {
			w.WriteString(" comment " + quoteIpset(e.Comment))
		}
		w.WriteString("\n")
	}
	return w.String()
}

func (b ipsetBackend) add(ctx context.Context, entries []Entry) (int, []string, error) {
	_, err := b.r.Run(ctx, strings.NewReader(ipsetScript(entries, true)), "ipset", "-exist", "restore")
	if err == nil {
		return len(entries), nil, nil
	}
	if !strings.Contains(err.Error(), "without comment support") {
		return 0, nil, ipsetError(err)
	}
	if _, err := b.r.Run(ctx, strings.NewReader(ipsetScript(entries, false)), "ipset", "-exist", "restore"); err != nil {
		return 0, nil, ipsetError(err)
	}
	return len(entries), []string{"reason not stored: the applied ipsets were created without the comment extension"}, nil
}

func (b ipsetBackend) del(ctx context.Context, entries []Entry) error {
	var w strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&w, "del %s %s\n", kernelName("iptables", e.List, family(e.Prefix)), FormatPrefix(e.Prefix))
	}
	if _, err := b.r.Run(ctx, strings.NewReader(w.String()), "ipset", "-exist", "restore"); err != nil {
		return ipsetError(err)
	}
	return nil
}

func ipsetError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "does not exist"):
		return fmt.Errorf("ipset: a list's set is missing (run sipwall apply): %w", err)
	case strings.Contains(msg, "is full"):
		return fmt.Errorf("ipset: the set is full (maxelem); the entries before the failing line were added: %w", err)
	case strings.Contains(msg, "Kernel error received"), strings.Contains(msg, "not supported"):
		return fmt.Errorf("ipset: this kernel lacks a feature the lists need: %w", err)
	}
	return fmt.Errorf("ipset refused the change: %w", err)
}
