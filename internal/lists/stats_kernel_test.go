package lists_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/apply"
	sw "github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/lists"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// sendUDP sends payload from src (an address of ns) to the server's port.
func sendUDP(t *testing.T, ns, src string, port int, payloads ...string) {
	t.Helper()
	err := netns.Do(ns, func() error {
		// Unconnected: the port unreachable answers to accepted
		// packets do not stop the next ones.
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
		if err != nil {
			return err
		}
		defer c.Close()
		dst := &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: port}
		for _, p := range payloads {
			if _, err := c.WriteToUDP([]byte(p), dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// syn sends one TCP SYN from src to the server's port (the dial gives up
// before the kernel would send it again).
func syn(t *testing.T, ns, src string, port int) {
	t.Helper()
	err := netns.Do(ns, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 300 * time.Millisecond}
		if c, err := d.Dial("tcp", fmt.Sprintf("192.0.2.10:%d", port)); err == nil {
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sipOptions(ua string) string {
	return "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.60:5060;branch=z9hG4bK-1\r\n" +
		"From: <sip:100@192.0.2.10>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: scan-1\r\nCSeq: 1 OPTIONS\r\n" +
		"User-Agent: " + ua + "\r\nContent-Length: 0\r\n\r\n"
}

func sipRegister(i int) string {
	return fmt.Sprintf("REGISTER sip:pbx.example-secret.net SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.62:5060;branch=z9hG4bK-%d\r\n"+
		"From: <sip:200@pbx.example-secret.net>;tag=%d\r\nTo: <sip:200@pbx.example-secret.net>\r\nCall-ID: flood-%d\r\n"+
		"CSeq: %d REGISTER\r\nContact: <sip:200@203.0.113.62>\r\nContent-Length: 0\r\n\r\n", i, i, i, i)
}

// TestStatsGroupsCountRealPackets applies the lab ruleset in a namespace,
// sends real packets at it from another (a scanner's user-agent, a trap
// port hit, a bogon source, a REGISTER flood) and checks that sipwall
// stats counts each in its group, on both backends: the groups come from
// the rules' kinds, mapped to the kernel's counters by chain and position.
func TestStatsGroupsCountRealPackets(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft", "conntrack")
			srv, inet := nstest.New(t, "ssrv"), nstest.New(t, "sinet")
			nstest.WireLab(t, srv, inet)
			nstest.Run(t, srv, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")
			for _, a := range []string{"203.0.113.60/32", "203.0.113.61/32", "203.0.113.62/32", "203.0.113.63/32", "10.1.2.3/32"} {
				nstest.Run(t, "", "ip", "-n", inet, "addr", "add", a, "dev", "eth0")
			}
			// The generation records where the kernel lists each rule
			// and the rule's kind (apply.NewGeneration).
			state := t.TempDir()
			ctx := context.Background()
			m := &apply.Manager{Host: sw.Host{NS: srv}, StateDir: state}
			gen := generation(t, b)
			if len(gen.Rules) == 0 {
				t.Fatal("the generation records no rules")
			}
			if _, err := m.Apply(ctx, gen, apply.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			store, err := lists.Open(ctx, state, sw.Host{NS: srv})
			if err != nil {
				t.Fatal(err)
			}

			// A scanner, twice: its signature, then its ban.
			sendUDP(t, inet, "203.0.113.60", 5060, sipOptions("friendly-scanner"))
			time.Sleep(50 * time.Millisecond)
			sendUDP(t, inet, "203.0.113.60", 5060, sipOptions("friendly-scanner"))
			// A scanner guard's inspector banned (nftables' way), through
			// guard's own Banner, then one of its packets.
			g := ban.Store{Sets: store.Kernel}
			if err := g.AddWhy(ctx, compile.SetScanners, netip.MustParseAddr("203.0.113.63"), time.Hour, compile.SignatureComment("sipvicious")); err != nil {
				t.Fatal(err)
			}
			sendUDP(t, inet, "203.0.113.63", 5060, sipOptions("sipvicious"))
			// A port scanner: a trap port, then SSH while trapped.
			syn(t, inet, "203.0.113.61", 23)
			syn(t, inet, "203.0.113.61", 2222)
			// Three packets from a bogon source.
			for range 3 {
				sendUDP(t, inet, "10.1.2.3", 9999, "x")
			}
			// A REGISTER flood: 40 at once, over a limit of 20 per 10 s.
			var flood []string
			for i := range 40 {
				flood = append(flood, sipRegister(i))
			}
			sendUDP(t, inet, "203.0.113.62", 5060, flood...)
			time.Sleep(100 * time.Millisecond)

			st, err := store.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Note != "" {
				t.Fatal(st.Note)
			}
			got := map[string]uint64{}
			for _, g := range st.Groups {
				got[g.Key] = g.Packets
			}
			want := map[string]uint64{"trap": 1, "trapped": 1, "trap-ban": 2, "spoofing": 3}
			if b == "iptables" {
				want["scanner-signature"] = 1 // the scanner's first packet, by its signature
				want["scanner-ban"] = 1
				want["scanner-banned"] = 2 // its second packet, and the packet of the one guard banned
				want["knock"] = 1          // the flood's first REGISTER names the secret hostname
			} else {
				// Without guard running, every SIP packet of an unknown
				// source goes to the inspector and the kernel bans
				// nobody by signature: 2 from the scanner, 40 from the
				// flood.
				want["scanner-inspected"] = 42
				want["scanner-banned"] = 1 // the packet of the one guard banned
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("group %s: %d packets, want %d", k, got[k], n)
				}
			}
			// The flood: the first 20 pass (the burst), the rest are
			// dropped but for the few the rate refills meanwhile.
			if n := got["rate-limit"]; n < 15 || n > 20 {
				t.Errorf("group rate-limit: %d packets, want 15 to 20 of the 40 REGISTERs", n)
			}
			if b == "iptables" {
				for _, g := range st.Groups {
					if g.Key != "scanner-signature" {
						continue
					}
					for _, r := range g.Rules {
						want := uint64(0)
						if r.Comment == "scanner signature friendly-scanner" {
							want = 1
						}
						if r.Packets != want {
							t.Errorf("signature rule %q: %d packets, want %d", r.Comment, r.Packets, want)
						}
					}
				}
			}
			// The sources listed per signature, as guard recorded them.
			if len(st.Signatures) != 1 || st.Signatures[0] != (lists.Signature{Signature: "sipvicious", Sources: 1}) {
				t.Errorf("scanners by signature: %+v, want sipvicious 1", st.Signatures)
			}
			if t.Failed() || testing.Verbose() {
				for _, line := range st.Summary() {
					t.Log(line)
				}
			}
		})
	}
}
