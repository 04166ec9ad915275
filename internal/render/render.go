// Package render turns a ruleset into the files of a backend: rules.v4,
// rules.v6 and ipsets for iptables, sipwall.nft for nftables.
package render

import (
	"fmt"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/render/iptables"
	"github.com/sipwall/sipwall/internal/render/nft"
)

// FileOrder lists the files of each backend in the order they load.
var FileOrder = map[backend.Name][]string{
	backend.IPTables: {"ipsets", "rules.v4", "rules.v6"},
	backend.NFTables: {"sipwall.nft"},
}

// Files renders rs for backend ("iptables" or "nftables"); a file the
// ruleset does not need (rules.v6 without IPv6) is the empty string.
func Files(rs *ir.Ruleset, b backend.Name) (map[string]string, error) {
	switch b {
	case backend.IPTables:
		out, err := iptables.Render(rs)
		if err != nil {
			return nil, err
		}
		return map[string]string{"rules.v4": out.V4, "rules.v6": out.V6, "ipsets": out.IPSets}, nil
	case backend.NFTables:
		out, err := nft.Render(rs)
		if err != nil {
			return nil, err
		}
		return map[string]string{"sipwall.nft": out}, nil
	}
	return nil, fmt.Errorf("render: unknown backend %q", b)
}

// List renders rs for backend as a listing: the entries whose text makes
// the files of Files, each rule with the IR rule it came from.
func List(rs *ir.Ruleset, b backend.Name) (*ir.Listing, error) {
	switch b {
	case backend.IPTables:
		return iptables.List(rs)
	case backend.NFTables:
		return nft.List(rs)
	}
	return nil, fmt.Errorf("render: unknown backend %q", b)
}
