package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

var iptCounter = regexp.MustCompile(`^\[(\d+):\d+\] -A \S+ .*-j DROP\b`)
var iptPolicy = regexp.MustCompile(`^:\S+ DROP \[(\d+):\d+\]`)

// iptablesDrops sums the drop counters of iptables-save -c output.
func iptablesDrops(save string) Drops {
	var d Drops
	table := ""
	sc := bufio.NewScanner(strings.NewReader(save))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "*") {
			table = line[1:]
			continue
		}
		m := iptCounter.FindStringSubmatch(line)
		if m == nil {
			m = iptPolicy.FindStringSubmatch(line)
		}
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		d.All += n
		if table == "raw" {
			d.Raw += n
		}
	}
	return d
}

var nftDrop = regexp.MustCompile(`counter packets (\d+) bytes \d+ drop\b`)

// nftDrops sums the drop counters of `nft list table inet sipwall`; the
// chains reached from the prerouting hook count as raw.
func nftDrops(listing string) Drops {
	raw := map[string]bool{"sipwall-pre": true, "sipwall-public": true, "sipwall-sip": true, "sipwall-scanner": true}
	var d Drops
	chain := ""
	sc := bufio.NewScanner(strings.NewReader(listing))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "chain "); ok {
			chain = strings.TrimSuffix(strings.TrimSpace(name), " {")
			continue
		}
		m := nftDrop.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		d.All += n
		if raw[chain] {
			d.Raw += n
		}
	}
	return d
}

// kernelDrops reads the drop counters of the firewall in ns.
func kernelDrops(ctx context.Context, ns string, nftables bool) (Drops, error) {
	if nftables {
		out, err := run(ctx, ns, "nft", "list", "table", "inet", "sipwall")
		if err != nil {
			return Drops{}, err
		}
		return nftDrops(out), nil
	}
	v4, err := run(ctx, ns, "iptables-save", "-c")
	if err != nil {
		return Drops{}, err
	}
	v6, err := run(ctx, ns, "ip6tables-save", "-c")
	if err != nil {
		return Drops{}, err
	}
	a, b := iptablesDrops(v4), iptablesDrops(v6)
	return Drops{Raw: a.Raw + b.Raw, All: a.All + b.All}, nil
}
