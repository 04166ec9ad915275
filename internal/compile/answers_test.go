package compile_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// sipAnswer is a response the server sends.
func sipAnswer(status string) string {
	return fmt.Sprintf("SIP/2.0 %s\r\nVia: SIP/2.0/UDP 203.0.113.20:5060;branch=z9hG4bK-%d\r\nFrom: <sip:1001@192.0.2.10>;tag=1\r\nTo: <sip:1001@192.0.2.10>;tag=2\r\nCall-ID: %d@test\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
		status, time.Now().UnixNano(), time.Now().UnixNano())
}

// answer sends status from the server's SIP socket (port 5060) to addr:
// a real packet through the server's OUTPUT hook.
func (l *labNet) answer(t *testing.T, addr, status string) {
	t.Helper()
	c := l.udp4
	if strings.Contains(addr, ":") {
		c = l.udp6
	}
	if _, err := c.WriteToUDP([]byte(sipAnswer(status)), &net.UDPAddr{IP: net.ParseIP(addr), Port: 5060}); err != nil {
		t.Fatalf("answer to %s: %v", addr, err)
	}
}

// TestAnswerBans loads testdata/policies/answers.yaml (10 auth failures
// or 10 not-found answers per minute, per remote address) and sends real
// requests and real answers through the server's namespace, on both
// backends: a password guesser answered 401 is banned from every port at
// its 11th answer and not before, over IPv4 and IPv6; an enumerator
// answered 404 over TCP is banned the same way; a phone that registers
// (401 then 200) again and again, types a wrong password once and dials a
// wrong number once is never banned; trusted and allowed sources are never
// banned, whatever they are answered.
func TestAnswerBans(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	const guesser, guesser6, enumerator, phone, trunk, allowed = "203.0.113.20", "2001:db8:20::11", "203.0.113.21", "198.51.100.21", "198.51.100.50", "198.51.100.60"
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(b), func(t *testing.T) {
			l := newLabNet(t)
			for _, a := range []string{trunk + "/32", allowed + "/32"} {
				nstest.Run(t, "", "ip", "-n", l.inet, "addr", "add", a, "dev", "eth0")
			}
			_, files := renderCase(t, goldenCase{Policy: "testdata/policies/answers.yaml", Backend: b})
			load(t, l.srv, files)
			answered := func(addr string) bool { return l.inSet(t, b, compile.SetAnswered, addr) }

			// The guesser: REGISTER, 401, ten times: at the threshold, not over.
			for _, g := range []string{guesser, guesser6} {
				for i := 1; i <= 10; i++ {
					if !l.sendUDP(t, g, sipRequest("REGISTER", "192.0.2.10", "Z 5.4.12 v2.10.20.4"), true) {
						t.Fatalf("%s: REGISTER %d did not reach the server", g, i)
					}
					l.answer(t, g, "401 Unauthorized")
				}
				if answered(g) {
					t.Fatalf("%s was banned after 10 answers 401; the threshold is over 10", g)
				}
				if !l.sendUDP(t, g, sipRequest("REGISTER", "192.0.2.10", "Z 5.4.12 v2.10.20.4"), true) {
					t.Fatalf("%s: the 11th REGISTER did not reach the server", g)
				}
				l.answer(t, g, "401 Unauthorized")
				if !answered(g) {
					t.Fatalf("%s was not banned at its 11th answer 401", g)
				}
				if l.sendUDP(t, g, sipRequest("REGISTER", "192.0.2.10", "Z 5.4.12 v2.10.20.4"), false) {
					t.Errorf("%s: a REGISTER reached the server after the ban", g)
				}
			}
			// Banned from every port: SSH too.
			if _, ok := l.dialTCP(t, guesser, 2222, false); ok {
				t.Error("the banned guesser still reaches SSH")
			}

			// The enumerator over TCP: eleven 404s on one connection.
			err := netns.Do(l.srv, func() error {
				ln, err := net.Listen("tcp", ":5070")
				if err != nil {
					return err
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					for i := 0; i < 11; i++ {
						c.Write([]byte(sipAnswer("404 Not Found")))
						time.Sleep(20 * time.Millisecond)
					}
				}()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var c net.Conn
			err = netns.Do(l.inet, func() error {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(enumerator)}, Timeout: 5 * time.Second}
				c, err = d.Dial("tcp", "192.0.2.10:5070")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := readAnswers(c, 10)
			c.Close()
			if got < 10 {
				t.Errorf("the enumerator read %d answers 404 before its ban, want 10", got)
			}
			deadline := time.Now().Add(3 * time.Second)
			for !answered(enumerator) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if !answered(enumerator) {
				t.Error("the enumerator answered 404 eleven times over TCP was not banned")
			}

			// The phone: six registrations (401, then 200), a wrong
			// password typed once (401 after 401), a wrong number once
			// (404): never banned.
			for i := 0; i < 6; i++ {
				if !l.sendUDP(t, phone, sipRequest("REGISTER", "192.0.2.10", "Zoiper rv2.10.20.4"), true) {
					t.Fatalf("the phone's REGISTER %d did not reach the server", i+1)
				}
				l.answer(t, phone, "401 Unauthorized")
				l.sendUDP(t, phone, sipRequest("REGISTER", "192.0.2.10", "Zoiper rv2.10.20.4"), true)
				status := "200 OK"
				if i == 3 {
					status = "401 Unauthorized"
				}
				l.answer(t, phone, status)
			}
			l.answer(t, phone, "404 Not Found")
			for i := 0; i < 50; i++ {
				l.answer(t, phone, "200 OK")
			}
			if answered(phone) {
				t.Error("the phone was banned")
			}
			if !l.sendUDP(t, phone, sipRequest("INVITE", "192.0.2.10", "Zoiper rv2.10.20.4"), true) {
				t.Error("the phone's INVITE did not reach the server")
			}

			// Trusted and allowed: thirty 401s and thirty 404s ban neither.
			if b == backend.IPTables {
				nstest.Run(t, l.srv, "ipset", "add", "sipwall-allowed4", allowed)
			} else {
				nstest.Run(t, l.srv, "nft", "add", "element", "inet", "sipwall", "allowed4", "{ "+allowed+" }")
			}
			for _, a := range []string{trunk, allowed} {
				for i := 0; i < 30; i++ {
					l.answer(t, a, "401 Unauthorized")
					l.answer(t, a, "404 Not Found")
				}
				if answered(a) {
					t.Errorf("%s (trusted or allowed) was banned by its answers", a)
				}
				if !l.sendUDP(t, a, sipRequest("REGISTER", "192.0.2.10", "Cisco-SIPGateway/IOS-15"), true) {
					t.Errorf("%s (trusted or allowed) lost SIP", a)
				}
			}
		})
	}
}

// readAnswers reads from c until it has seen want SIP status lines or
// the connection ends, and returns how many it saw.
func readAnswers(c net.Conn, want int) (int, error) {
	var all []byte
	buf := make([]byte, 4096)
	for strings.Count(string(all), "SIP/2.0 404") < want {
		n, err := c.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			return strings.Count(string(all), "SIP/2.0 404"), err
		}
	}
	return strings.Count(string(all), "SIP/2.0 404"), nil
}
