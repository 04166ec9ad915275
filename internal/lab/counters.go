package lab

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/backend/iptables"
	"github.com/sipwall/sipwall/internal/backend/nftables"
	"github.com/sipwall/sipwall/internal/compile"
)

// countersNFT is loaded into every client namespace: it counts, at the
// client, the SIP requests it sends (UDP or TCP data to a SIP port), the SIP
// answers it receives (payload starting with "SIP/2.0" from a SIP port), and
// TCP SYNs out and SYN-ACKs in (port scans, SYN floods, SSH checks). The
// client's own view is what matters: an answer counted here really arrived.
const countersNFT = `table inet lab {
	counter sip_out { }
	counter sip_in { }
	counter syn_out { }
	counter synack_in { }
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto { udp, tcp } th dport 5060-5082 @ih,0,8 != 0 counter name sip_out
		tcp flags & (syn|ack) == syn counter name syn_out
	}
	chain in {
		type filter hook input priority 0; policy accept;
		meta l4proto { udp, tcp } th sport 5060-5082 @ih,0,56 0x5349502f322e30 counter name sip_in
		tcp flags & (syn|ack) == syn|ack counter name synack_in
	}
}
`

// counts is what a client's counters say.
type counts struct {
	SIPOut, SIPIn, SYNOut, SYNACKIn int
}

func (c counts) minus(o counts) counts {
	return counts{c.SIPOut - o.SIPOut, c.SIPIn - o.SIPIn, c.SYNOut - o.SYNOut, c.SYNACKIn - o.SYNACKIn}
}

func loadCounters(ctx context.Context, ns string) error {
	if _, err := netnsRunStdin(ctx, ns, countersNFT, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: counters in %s: %w", ns, err)
	}
	return nil
}

func readCounters(ctx context.Context, ns string) (counts, error) {
	out, err := run(ctx, ns, "nft", "-j", "list", "counters", "table", "inet", "lab")
	if err != nil {
		return counts{}, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return counts{}, fmt.Errorf("lab: counters in %s: %w", ns, err)
	}
	var c counts
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		switch o.Counter.Name {
		case "sip_out":
			c.SIPOut = o.Counter.Packets
		case "sip_in":
			c.SIPIn = o.Counter.Packets
		case "syn_out":
			c.SYNOut = o.Counter.Packets
		case "synack_in":
			c.SYNACKIn = o.Counter.Packets
		}
	}
	return c, nil
}

// Drops sums the firewall's own packet counters in the server namespace,
// like the article's "how effective are these rules" section, which adds
// up the DROP lines of the raw table.
type Drops struct {
	// Raw counts the packets dropped before connection tracking (the raw
	// table, or nftables' prerouting chains): scanners, banned sources,
	// method floods.
	Raw int `json:"raw"`
	// All adds every other drop rule (traps, SYN rate, SIP from unknown
	// sources) and, with iptables, the INPUT chain's policy.
	All int `json:"all"`
}

// sumDrops adds up the counters of the rules and policies that drop;
// raw says which count before connection tracking.
func sumDrops(cs []backend.Counter, raw func(backend.Counter) bool) Drops {
	var d Drops
	for _, c := range cs {
		if c.Verdict != "drop" {
			continue
		}
		d.All += int(c.Packets)
		if raw(c) {
			d.Raw += int(c.Packets)
		}
	}
	return d
}

// nftRawChains are the chains of table inet sipwall reached from the
// prerouting hook, before connection tracking.
var nftRawChains = map[string]bool{compile.ChainRawPre: true, compile.ChainRawPublic: true, compile.ChainRawSIP: true, compile.ChainScanner: true}

// kernelDrops reads the drop counters of the firewall in ns: sipwall's
// nftables table, or every iptables rule (sipwall's or the article's).
func kernelDrops(ctx context.Context, ns string, nft bool) (Drops, error) {
	h := backend.Host{NS: ns}
	if nft {
		cs, err := nftables.New(h).Counters(ctx)
		if err != nil {
			return Drops{}, err
		}
		return sumDrops(cs, func(c backend.Counter) bool { return nftRawChains[c.Chain] }), nil
	}
	cs, err := iptables.New(h).AllCounters(ctx)
	if err != nil {
		return Drops{}, err
	}
	return sumDrops(cs, func(c backend.Counter) bool { return c.Table == "raw" }), nil
}
