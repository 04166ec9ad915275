package compile_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// labNet is the lab of shared/corpus/pcap in two namespaces: the server
// (192.0.2.10, 2001:db8:10::10 on eth0) and "the Internet", one namespace
// holding every client address on a single link.
type labNet struct {
	srv, inet string
	udp4      *net.UDPConn
	udp6      *net.UDPConn
	got       chan string // payloads the server's SIP sockets received
}

func newLabNet(t testing.TB) *labNet {
	t.Helper()
	l := &labNet{srv: nstest.New(t, "srv"), inet: nstest.New(t, "inet"), got: make(chan string, 64)}
	nstest.WireLab(t, l.srv, l.inet)
	for _, a := range []string{"203.0.113.11/32", "203.0.113.16/32", "203.0.113.20/32", "203.0.113.21/32", "198.51.100.21/32", "198.51.100.22/32"} {
		nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", a, "dev", "eth0")
	}
	for _, a := range []string{"2001:db8:20::11/128", "2001:db8:20::21/128"} {
		nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", a, "dev", "eth0", "nodad")
	}
	err := netns.Do(l.srv, func() error {
		var err error
		if l.udp4, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 5060}); err != nil {
			return err
		}
		if l.udp6, err = net.ListenUDP("udp6", &net.UDPAddr{Port: 5060}); err != nil {
			return err
		}
		for _, port := range []int{2222, 5060} {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go l.serveTCP(ln)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.udp4.Close(); l.udp6.Close() })
	for _, c := range []*net.UDPConn{l.udp4, l.udp6} {
		go func(c *net.UDPConn) {
			buf := make([]byte, 65536)
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					return
				}
				l.got <- from.IP.String() + " " + string(buf[:n])
			}
		}(c)
	}
	return l
}

func (l *labNet) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			if n > 0 {
				l.got <- c.RemoteAddr().(*net.TCPAddr).IP.String() + " " + string(buf[:n])
			}
		}()
	}
}

func sipRequest(method, host, ua string) string {
	return fmt.Sprintf("%s sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bK-%d\r\nFrom: <sip:1001@%s>;tag=1\r\nTo: <sip:1001@%s>\r\nCall-ID: %d@test\r\nCSeq: 1 %s\r\nUser-Agent: %s\r\nContent-Length: 0\r\n\r\n",
		method, host, time.Now().UnixNano(), host, host, time.Now().UnixNano(), method, ua)
}

// sendUDP sends payload from src to the server's SIP port and reports
// whether the server's socket received it. The wait is long when the packet
// is expected (a loaded machine is slow) and short when it is not.
func (l *labNet) sendUDP(t *testing.T, src, payload string, expect bool) bool {
	t.Helper()
	dst := "192.0.2.10"
	if strings.Contains(src, ":") {
		dst = "2001:db8:10::10"
	}
	var c *net.UDPConn
	err := netns.Do(l.inet, func() error {
		var err error
		c, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: 5060})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	return l.received(src, waitFor(expect))
}

func waitFor(expect bool) time.Duration {
	if expect {
		return 5 * time.Second
	}
	return 700 * time.Millisecond
}

// burst sends payloads from src back to back and counts how many the
// server received.
func (l *labNet) burst(t *testing.T, src string, payloads []string) int {
	t.Helper()
	var c *net.UDPConn
	err := netns.Do(l.inet, func() error {
		var err error
		c, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("192.0.2.10"), Port: 5060})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range payloads {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for l.received(src, waitFor(false)) {
		n++
	}
	return n
}

// received waits for a payload from src.
func (l *labNet) received(src string, wait time.Duration) bool {
	deadline := time.After(wait)
	for {
		select {
		case p := <-l.got:
			if strings.HasPrefix(p, src+" ") {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// dialTCP connects from src to the server and reports whether the handshake completed.
func (l *labNet) dialTCP(t *testing.T, src string, port int, expect bool) (net.Conn, bool) {
	t.Helper()
	var c net.Conn
	err := netns.Do(l.inet, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor(expect)}
		var err error
		c, err = d.Dial("tcp", fmt.Sprintf("192.0.2.10:%d", port))
		return err
	})
	return c, err == nil
}

func (l *labNet) inSet(t *testing.T, b backend.Name, set, addr string) bool {
	t.Helper()
	fam := "4"
	if strings.Contains(addr, ":") {
		fam = "6"
	}
	if b == backend.IPTables {
		_, err := netns.Run(context.Background(), l.srv, nil, "ipset", "test", "sipwall-"+set+fam, addr)
		return err == nil
	}
	out := nstest.Run(t, l.srv, "nft", "list", "set", "inet", "sipwall", set+fam)
	return strings.Contains(out, addr)
}

// TestLabRulesetOnRealPackets loads examples/lab.yaml into a server
// namespace and sends real packets at it from the lab's addresses.
func TestLabRulesetOnRealPackets(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	const host = "pbx.example-secret.net"
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(b), func(t *testing.T) {
			l := newLabNet(t)
			_, files := renderCase(t, goldenCase{Policy: "../../examples/lab.yaml", Backend: b})
			load(t, l.srv, files)

			// SSH from a phone works before anything else happens.
			if c, ok := l.dialTCP(t, "198.51.100.21", 2222, true); !ok {
				t.Fatal("the phone cannot reach SSH")
			} else {
				c.Close()
			}

			// A scanner's OPTIONS never reaches the server.
			if l.sendUDP(t, "203.0.113.11", sipRequest("OPTIONS", "192.0.2.10", "friendly-scanner"), false) {
				t.Error("the scanner's OPTIONS reached the server")
			}
			// A source without the knock does not reach SIP either, and is not banned.
			if l.sendUDP(t, "203.0.113.20", sipRequest("OPTIONS", "192.0.2.10", "Nmap NSE"), false) {
				t.Error("an OPTIONS without the hostname reached the server")
			}
			if l.inSet(t, b, compile.SetScanners, "203.0.113.20") {
				t.Error("a source without a scanner signature was banned as a scanner")
			}
			if b == backend.IPTables {
				if !l.inSet(t, b, compile.SetScanners, "203.0.113.11") {
					t.Error("the scanner was not banned")
				}
				// Banned: even the knock does not help it now.
				if l.sendUDP(t, "203.0.113.11", sipRequest("REGISTER", host, "friendly-scanner-2"), false) {
					t.Error("a banned scanner's REGISTER reached the server")
				}
				// A phone's REGISTER carrying the hostname is admitted, and so is what follows.
				if !l.sendUDP(t, "198.51.100.21", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), true) {
					t.Error("the phone's REGISTER with the hostname was dropped")
				}
				if !l.inSet(t, b, compile.SetAdmitted, "198.51.100.21") {
					t.Error("the phone was not admitted")
				}
				if !l.sendUDP(t, "198.51.100.21", sipRequest("OPTIONS", "192.0.2.10", "Zoiper rv2.10.20.4"), true) {
					t.Error("the admitted phone's next request was dropped")
				}
				// IPv6: the same.
				if l.sendUDP(t, "2001:db8:20::11", sipRequest("OPTIONS", "[2001:db8:10::10]", "sipvicious"), false) {
					t.Error("the IPv6 scanner's OPTIONS reached the server")
				}
				if !l.inSet(t, b, compile.SetScanners, "2001:db8:20::11") {
					t.Error("the IPv6 scanner was not banned")
				}
				if !l.sendUDP(t, "2001:db8:20::21", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), true) {
					t.Error("the IPv6 phone's REGISTER with the hostname was dropped")
				}
				// TCP: the handshake is accepted, data waits for the knock.
				c, ok := l.dialTCP(t, "203.0.113.21", 5060, true)
				if !ok {
					t.Fatal("TCP handshake to 5060 refused")
				}
				c.Write([]byte(sipRequest("OPTIONS", "192.0.2.10", "Nmap NSE")))
				if l.received("203.0.113.21", waitFor(false)) {
					t.Error("TCP data without the knock reached the server")
				}
				c.Close()
				c, ok = l.dialTCP(t, "198.51.100.22", 5060, true)
				if !ok {
					t.Fatal("TCP handshake to 5060 refused")
				}
				c.Write([]byte(sipRequest("REGISTER", host, "Zoiper rv2.10.20.4")))
				if !l.received("198.51.100.22", waitFor(true)) {
					t.Error("the TCP phone's REGISTER with the hostname did not reach the server")
				}
				c.Close()
			} else {
				// nftables: the knock is guard's job; the ruleset hands unknown
				// sources to it (nflog) and admits what is in the allowed set.
				listed := nstest.Run(t, l.srv, "nft", "list", "chain", "inet", "sipwall", compile.ChainRawSIP)
				if !strings.Contains(listed, `log prefix "sipwall-inspect" group 5060 counter packets 2`) {
					t.Errorf("the inspector hook did not see the 2 packets of unknown sources:\n%s", listed)
				}
				if l.sendUDP(t, "198.51.100.21", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), false) {
					t.Error("without guard, a REGISTER from an unknown source must wait")
				}
				// Single addresses go to the hash set allowed4, networks to
				// the interval set allowed-net4; either admits.
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "allowed4", "{ 198.51.100.21 }")
				if !l.sendUDP(t, "198.51.100.21", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), true) {
					t.Error("a source in the allowed set was dropped")
				}
				if l.sendUDP(t, "198.51.100.22", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), false) {
					t.Error("a source in neither allowed set was admitted")
				}
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "allowed-net4", "{ 198.51.100.0/24 }")
				if !l.sendUDP(t, "198.51.100.22", sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), true) {
					t.Error("a source inside a network of the allowed-net set was dropped")
				}
			}

			// REGISTER limits count the request line only: OPTIONS that carry
			// "REGISTER sip:" in a header all pass; REGISTERs beyond 20 do not.
			// (Sources allowed by hand are never limited: on nftables the
			// phone moves from the allowed sets to the admitted one.)
			admitted := "198.51.100.21"
			if b == backend.IPTables {
				l.sendUDP(t, admitted, sipRequest("REGISTER", host, "Zoiper"), true)
			} else {
				nstest.Run(t, l.srv, "nft", "delete", "element", "inet", "sipwall", "allowed4", "{ "+admitted+" }")
				nstest.Run(t, l.srv, "nft", "delete", "element", "inet", "sipwall", "allowed-net4", "{ 198.51.100.0/24 }")
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "admitted4", "{ "+admitted+" }")
			}
			var reqs []string
			for i := 0; i < 30; i++ {
				reqs = append(reqs, strings.Replace(sipRequest("OPTIONS", host, "Zoiper"), "Content-Length", "X-Note: REGISTER sip:1001@"+host+"\r\nContent-Length", 1))
			}
			if passed := l.burst(t, admitted, reqs); passed != 30 {
				t.Errorf("%d of 30 OPTIONS with \"REGISTER sip:\" in a header passed; a header must not count as a REGISTER", passed)
			}
			reqs = reqs[:0]
			for i := 0; i < 30; i++ {
				reqs = append(reqs, sipRequest("REGISTER", host, "Zoiper"))
			}
			// The bucket holds 20 (one REGISTER already spent on iptables'
			// knock; it refills at 2/s).
			if passed := l.burst(t, admitted, reqs); passed < 19 || passed > 21 {
				t.Errorf("%d of 30 REGISTERs in a burst passed, want about 20", passed)
			}

			// A SYN to trap port 23 bans the sender from every port, SSH included.
			if c, ok := l.dialTCP(t, "203.0.113.16", 2222, true); !ok {
				t.Fatal("the port scanner could not reach SSH before the trap")
			} else {
				c.Close()
			}
			if _, ok := l.dialTCP(t, "203.0.113.16", 23, false); ok {
				t.Error("port 23 answered")
			}
			if !l.inSet(t, b, compile.SetTrapped, "203.0.113.16") {
				t.Error("the port scanner was not trap-banned")
			}
			if _, ok := l.dialTCP(t, "203.0.113.16", 2222, false); ok {
				t.Error("the trap-banned source still reaches SSH")
			}
			if c, ok := l.dialTCP(t, "198.51.100.21", 2222, true); !ok {
				t.Error("the phone lost SSH")
			} else {
				c.Close()
			}
		})
	}
}

// sipMessage is a SIP request with a display name in From and a body.
func sipMessage(method, uri, display, ua, body string) string {
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK-%d\r\nFrom: \"%s\" <sip:+15550001@carrier.example>;tag=1\r\nTo: <%s>\r\nCall-ID: %d@test\r\nCSeq: 1 %s\r\nUser-Agent: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		method, uri, time.Now().UnixNano(), display, uri, time.Now().UnixNano(), method, ua, len(body), body)
}

// TestTrustedIsTrusted loads the lab policy with a trunk in trusted.sip and
// checks, with real packets on both backends, that what callers write never
// cuts the PBX off: the trunk's INVITE by IP (no secret hostname) reaches
// the server, a caller's display name "friendly-scanner" relayed by the
// trunk bans nobody, the INVITE limit and the trap ports spare it, an
// admitted phone's chat MESSAGE containing "sipvicious" bans nobody, and an
// allowed source is neither banned nor limited; a real scanner is still
// dropped (and banned in the kernel with iptables).
func TestTrustedIsTrusted(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	const host = "pbx.example-secret.net"
	lab, err := os.ReadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(t.TempDir(), "trunk.yaml")
	if err := os.WriteFile(pol, append(lab, []byte("\ntrusted:\n  sip: [198.51.100.50, \"2001:db8:20::50\"]\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	const trunk, trunk6, phone, allowed, scanner = "198.51.100.50", "2001:db8:20::50", "198.51.100.21", "198.51.100.60", "203.0.113.11"
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(b), func(t *testing.T) {
			l := newLabNet(t)
			for _, a := range []string{trunk + "/32", allowed + "/32"} {
				nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", a, "dev", "eth0")
			}
			nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", trunk6+"/128", "dev", "eth0", "nodad")
			_, files := renderCase(t, goldenCase{Policy: pol, Backend: b})
			load(t, l.srv, files)
			banned := func(addr string) bool {
				return l.inSet(t, b, compile.SetScanners, addr) || l.inSet(t, b, compile.SetTrapped, addr) || l.inSet(t, b, compile.SetBanned, addr)
			}

			// The trunk: an INVITE to the server's address, a caller who
			// calls himself "friendly-scanner", a body naming sipvicious.
			invite := sipMessage("INVITE", "sip:+15551234@192.0.2.10", "friendly-scanner", "Cisco-SIPGateway/IOS-15", "v=0 sipvicious")
			if !l.sendUDP(t, trunk, invite, true) {
				t.Error("the trusted trunk's INVITE by IP did not reach the server")
			}
			if !l.sendUDP(t, trunk6, strings.Replace(invite, "192.0.2.10", "[2001:db8:10::10]", -1), true) {
				t.Error("the trusted trunk's INVITE over IPv6 did not reach the server")
			}
			// 40 INVITEs at once: the limit (20 per 5s) is not the trunk's.
			var calls []string
			for i := 0; i < 40; i++ {
				calls = append(calls, sipMessage("INVITE", "sip:+15551234@192.0.2.10", "friendly-scanner", "Cisco-SIPGateway/IOS-15", ""))
			}
			if n := l.burst(t, trunk, calls); n != 40 {
				t.Errorf("%d of 40 INVITEs of the trusted trunk reached the server; the INVITE limit must not apply to it", n)
			}
			// A trap port does not ban it.
			l.dialTCP(t, trunk, 23, false)
			if banned(trunk) || banned(trunk6) {
				t.Fatal("the trusted trunk was banned")
			}
			if !l.sendUDP(t, trunk, sipMessage("OPTIONS", "sip:192.0.2.10", "", "Cisco-SIPGateway/IOS-15", ""), true) {
				t.Error("the trusted trunk lost SIP after a trap port")
			}

			// The phone is admitted by its knock (on nftables guard's
			// inspector does that; here the set is filled the way guard does).
			if b == backend.IPTables {
				if !l.sendUDP(t, phone, sipRequest("REGISTER", host, "Zoiper rv2.10.20.4"), true) {
					t.Fatal("the phone's REGISTER with the hostname was dropped")
				}
			} else {
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "admitted4", "{ "+phone+" }")
			}
			chat := sipMessage("MESSAGE", "sip:1002@"+host, "Alice", "Zoiper rv2.10.20.4", "have you seen sipvicious? SIPVicious and friendly-scanner are scanners")
			if !l.sendUDP(t, phone, chat, true) {
				t.Error("the admitted phone's chat MESSAGE did not reach the server")
			}
			if !l.sendUDP(t, phone, sipMessage("INVITE", "sip:1002@"+host, "friendly-scanner", "Zoiper rv2.10.20.4", ""), true) {
				t.Error("the admitted phone's INVITE with display name friendly-scanner did not reach the server")
			}
			if banned(phone) {
				t.Error("the admitted phone was banned for what its messages say")
			}
			// The admitted phone is still rate-limited: 40 INVITEs, about 20 pass.
			calls = calls[:0]
			for i := 0; i < 40; i++ {
				calls = append(calls, sipMessage("INVITE", "sip:1002@"+host, "Alice", "Zoiper", ""))
			}
			if n := l.burst(t, phone, calls); n < 17 || n > 21 {
				t.Errorf("%d of 40 INVITEs of the admitted phone passed, want about 20 (the limit applies to admitted phones)", n)
			}

			// A source allowed by hand: no signature, limit or trap.
			set := "allowed4"
			if b == backend.IPTables {
				set = "sipwall-allowed4"
				nstest.Run(t, l.srv, "ipset", "add", set, allowed)
			} else {
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", set, "{ "+allowed+" }")
			}
			calls = calls[:0]
			for i := 0; i < 30; i++ {
				calls = append(calls, sipMessage("INVITE", "sip:1002@192.0.2.10", "sipvicious", "friendly-scanner", ""))
			}
			if n := l.burst(t, allowed, calls); n != 30 {
				t.Errorf("%d of 30 INVITEs of an allowed source passed, want all", n)
			}
			l.dialTCP(t, allowed, 23, false)
			if banned(allowed) {
				t.Error("an allowed source was banned")
			}

			// A real scanner is still dropped at its first packet.
			if l.sendUDP(t, scanner, sipRequest("OPTIONS", "192.0.2.10", "friendly-scanner"), false) {
				t.Error("the scanner's OPTIONS reached the server")
			}
			if b == backend.IPTables && !l.inSet(t, b, compile.SetScanners, scanner) {
				t.Error("the scanner was not banned")
			}
			// A packet of an unknown source carrying both the knock and a
			// signature bans it: the knock does not launder a scanner.
			if l.sendUDP(t, "203.0.113.20", sipRequest("REGISTER", host, "friendly-scanner"), false) {
				t.Error("a scanner's REGISTER carrying the hostname reached the server")
			}
			if b == backend.IPTables && !l.inSet(t, b, compile.SetScanners, "203.0.113.20") {
				t.Error("a scanner carrying the hostname was not banned")
			}
		})
	}
}
