// Package builtin registers the backends built into sipwall: importing it
// makes iptables and nftables known to backend.Open and backend.Parse.
package builtin

import (
	_ "github.com/sipwall/sipwall/internal/backend/iptables" // registers iptables
	_ "github.com/sipwall/sipwall/internal/backend/nftables" // registers nftables
)
