package apply

import (
	"context"
	"sort"

	"github.com/sipwall/sipwall/internal/backend"
)

// Detect picks the backend the host already uses, in the spirit of
// Tailscale's linuxfw: the one that holds rules wins; a host with no
// firewall gets nftables. It asks every registered backend how strongly it
// claims the host, and says why.
func Detect(ctx context.Context, h backend.Host, st *State) (backend.Name, string) {
	if st != nil && st.Current != nil {
		return st.Current.Backend, "sipwall's ruleset is already applied with " + string(st.Current.Backend)
	}
	type claim struct {
		name backend.Name
		backend.Claim
	}
	var claims []claim
	for _, n := range backend.Registered() {
		be, err := backend.Open(n, h)
		if err != nil {
			continue
		}
		claims = append(claims, claim{n, be.Claim(ctx)})
	}
	if len(claims) == 0 {
		return backend.NFTables, "no backend is registered"
	}
	sort.SliceStable(claims, func(i, j int) bool { return claims[i].Rank > claims[j].Rank })
	best := claims[0]
	if best.Rank < backend.ClaimDefault {
		// Nobody holds rules and the default cannot run: say why.
		for _, c := range claims[1:] {
			if c.Rank == backend.ClaimMissing {
				return best.name, c.Why
			}
		}
	}
	if best.Rank == backend.ClaimMissing {
		return best.name, "neither nft nor iptables-restore runs here"
	}
	return best.name, best.Why
}
