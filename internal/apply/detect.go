package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/system"
)

// compatTables are the tables iptables-nft creates in nftables.
var compatTables = map[string]bool{"filter": true, "raw": true, "nat": true, "mangle": true, "security": true}

// Detect picks the backend the host already uses, in the spirit of
// Tailscale's linuxfw: the one that holds rules wins; a host with no
// firewall gets nftables. It says why.
func Detect(ctx context.Context, h backend.Host, st *State) (backend.Name, string) {
	r := system.Exec{NS: h.NS}
	if st != nil && st.Current != nil {
		return st.Current.Backend, "sipwall's ruleset is already applied with " + string(st.Current.Backend)
	}
	_, nftErr := r.Run(ctx, nil, "nft", "--version")
	_, iptErr := r.Run(ctx, nil, "iptables-restore", "--version")
	switch {
	case nftErr != nil && iptErr != nil:
		return backend.IPTables, "neither nft nor iptables-restore runs here"
	case nftErr != nil:
		return backend.IPTables, "nft is not installed"
	case iptErr != nil:
		return backend.NFTables, "iptables is not installed"
	}
	if out, err := r.Run(ctx, nil, "iptables-legacy-save"); err == nil && strings.Contains(out, "\n-A ") {
		return backend.IPTables, fmt.Sprintf("the host's rules are in iptables-legacy (%d rules)", strings.Count(out, "\n-A "))
	}
	if out, err := r.Run(ctx, nil, "nft", "list", "tables"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line) // "table inet foo"
			if len(f) == 3 && f[0] == "table" && !((f[1] == "ip" || f[1] == "ip6") && compatTables[f[2]]) {
				return backend.NFTables, fmt.Sprintf("the host uses native nftables (table %s %s)", f[1], f[2])
			}
		}
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if out, err := r.Run(ctx, nil, save); err == nil && strings.Contains(out, "\n-A ") {
			return backend.IPTables, fmt.Sprintf("the host's rules are managed with iptables (%d rules in %s, fail2ban or Docker perhaps)", strings.Count(out, "\n-A "), save)
		}
	}
	return backend.NFTables, "no firewall rules found; nftables is the modern default"
}
