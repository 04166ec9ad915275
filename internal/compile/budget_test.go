package compile_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestUnknownBudget loads testdata/policies/budget.yaml (hostname mode,
// sip.unknown_budget 10 per minute) and checks with real packets on both
// backends: a phone that cannot knock registers within the budget, over
// UDP and TCP; a flood from a source that has not knocked is cut at the
// budget, also on a flow the server answered (conntrack established);
// once admitted (as guard does on Asterisk's report), the phone is no
// longer counted; a scanner is still dropped at its first packet.
func TestUnknownBudget(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	const phone, flooder, scanner = "198.51.100.22", "203.0.113.21", "203.0.113.11"
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(b), func(t *testing.T) {
			l := newLabNet(t)
			_, files := renderCase(t, goldenCase{Policy: "testdata/policies/budget.yaml", Backend: b})
			load(t, l.srv, files)

			// The phone has no hostname: its REGISTER names the address.
			for i := range 3 {
				if !l.sendUDP(t, phone, sipRequest("REGISTER", "192.0.2.10", "Yealink SIP-T46S 66.85.0.5"), true) {
					t.Fatalf("REGISTER %d of a phone without the knock was dropped within its budget", i+1)
				}
			}
			c, ok := l.dialTCP(t, phone, 5060, true)
			if !ok {
				t.Fatal("TCP connection of the phone refused")
			}
			c.Write([]byte(sipRequest("REGISTER", "192.0.2.10", "Yealink SIP-T46S 66.85.0.5")))
			if !l.received(phone, waitFor(true)) {
				t.Error("the phone's REGISTER over TCP was dropped within its budget")
			}
			c.Close()

			// A flood on one flow the server answers: 10 pass, then no more.
			var conn *net.UDPConn
			err := netns.Do(l.inet, func() error {
				var err error
				conn, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(flooder), Port: 5099}, &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 5060})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write([]byte(sipRequest("OPTIONS", "192.0.2.10", "Polycom")))
			if !l.received(flooder, waitFor(true)) {
				t.Fatal("the first OPTIONS of an unknown source was dropped")
			}
			// The server answers: the flow is established in conntrack.
			if _, err := l.udp4.WriteToUDP([]byte("SIP/2.0 200 OK\r\n\r\n"), &net.UDPAddr{IP: net.ParseIP(flooder), Port: 5099}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			for range 40 {
				conn.Write([]byte(sipRequest("OPTIONS", "192.0.2.10", "Polycom")))
			}
			n := 0
			for l.received(flooder, waitFor(false)) {
				n++
			}
			if n < 8 || n > 10 {
				t.Errorf("%d of a flood of 40 passed after 1 within the budget of 10, want 9 (8 to 10: the bucket refills while the test runs)", n)
			}

			// Asterisk reported the phone's registration: guard admits it
			// (here the set is filled as guard's banner does). Its SIP is
			// no longer counted.
			if b == backend.IPTables {
				nstest.Run(t, l.srv, "ipset", "add", "sipwall-admitted4", phone, "timeout", "3900")
			} else {
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "admitted4", "{ "+phone+" timeout 3900s }")
			}
			var opts []string
			for range 30 {
				opts = append(opts, sipRequest("OPTIONS", "192.0.2.10", "Yealink SIP-T46S 66.85.0.5"))
			}
			if n := l.burst(t, phone, opts); n != 30 {
				t.Errorf("%d of 30 OPTIONS of the admitted phone passed, want all", n)
			}

			// A scanner is still dropped at its first packet (and banned
			// in the kernel with iptables; guard's inspector bans it with
			// nftables, where the budget would let its first packets in).
			if b == backend.IPTables {
				if l.sendUDP(t, scanner, sipRequest("OPTIONS", "192.0.2.10", "friendly-scanner"), false) {
					t.Error("the scanner's OPTIONS reached the server")
				}
				if !l.inSet(t, b, compile.SetScanners, scanner) {
					t.Error("the scanner was not banned")
				}
			}
			// The counters say what the budget did.
			var listing string
			if b == backend.IPTables {
				listing = nstest.Run(t, l.srv, "iptables-save", "-c")
				if !strings.Contains(listing, "no knock: over the budget of 10 per 1m") {
					t.Errorf("no budget rule in the kernel:\n%s", listing)
				}
			} else {
				listing = nstest.Run(t, l.srv, "nft", "list", "table", "inet", "sipwall")
				if !strings.Contains(listing, "rate-budget4") {
					t.Errorf("no budget set in the kernel:\n%s", listing)
				}
			}
		})
	}
}
