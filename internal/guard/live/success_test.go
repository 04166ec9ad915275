package live

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/guard/ami"
	"github.com/sipwall/sipwall/internal/guard/ban"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

func successLine(addr, account string) string {
	return fmt.Sprintf(`[2024-03-01 10:00:00] SECURITY[28564] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="2024-03-01T10:00:00.123+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="%s",SessionID="6b3c1e1a-4e0f",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/%s/5062",UsingPassword="1"`+"\n", account, addr)
}

// entry returns the line of fb's listing for addr in list.
func entryOf(fb *ban.Fake, list, addr string) string {
	for _, l := range strings.Split(fb.String(), "\n") {
		if strings.HasPrefix(l, list+" "+addr+" ") {
			return l
		}
	}
	return ""
}

func TestLogSuccessAdmits(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "security")
	appendLines(t, log)
	fb := &ban.Fake{}
	m := NewMetrics()
	g, err := New(Config{
		Logs: []string{log}, StateDir: filepath.Join(dir, "state"),
		Jail:   jail.Config{MaxRetry: 3, FindTime: time.Hour, BanTime: time.Hour, NeverBan: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		Admit:  &Admit{For: time.Hour, Margin: 5 * time.Minute},
		Banner: fb, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(30 * time.Millisecond) // the follower has opened the file at its end

	// A phone that mistyped its password twice, then registered: admitted
	// for an hour and the margin, its failures forgotten.
	appendLines(t, log, failLine("198.51.100.7", 1), failLine("198.51.100.7", 2), successLine("198.51.100.7", "1001"))
	waitFor(t, "admission", func() bool { return fb.Has(compile.SetAdmitted, netip.MustParseAddr("198.51.100.7")) })
	if e := entryOf(fb, compile.SetAdmitted, "198.51.100.7"); e != `admitted 198.51.100.7 1h5m0s "authenticated as 1001 (SuccessfulAuth)"` {
		t.Errorf("admitted entry %q", e)
	}
	// Two more failures do not ban it (the count restarted at the success);
	// the third does: a success does not make a source unbannable.
	appendLines(t, log, failLine("198.51.100.7", 3), failLine("198.51.100.7", 4))
	time.Sleep(60 * time.Millisecond)
	if fb.Has(compile.SetBanned, netip.MustParseAddr("198.51.100.7")) {
		t.Fatal("banned after 2 failures following a success (maxretry 3)")
	}
	appendLines(t, log, failLine("198.51.100.7", 5))
	waitFor(t, "ban after the success", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("198.51.100.7")) })

	// A banned source that authenticates (packets in flight) is not
	// admitted: the ban stands.
	for i := range 3 {
		appendLines(t, log, failLine("203.0.113.9", i))
	}
	waitFor(t, "ban", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.9")) })
	appendLines(t, log, successLine("203.0.113.9", "1009"), successLine("192.0.2.33", "trunk"), successLine("198.51.100.8", `evil"x`))
	waitFor(t, "the next admission", func() bool { return fb.Has(compile.SetAdmitted, netip.MustParseAddr("198.51.100.8")) })
	if fb.Has(compile.SetAdmitted, netip.MustParseAddr("203.0.113.9")) {
		t.Error("a banned source was admitted by a success")
	}
	if fb.Has(compile.SetAdmitted, netip.MustParseAddr("192.0.2.33")) {
		t.Error("a trusted source was put in the admitted list")
	}
	// pjsip reports a success per request: a second one within the minute
	// writes nothing (the metric counts writes).
	appendLines(t, log, successLine("198.51.100.8", "1008"))
	time.Sleep(60 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(m, g.h))
	defer srv.Close()
	if body := get(t, srv.URL+"/metrics"); !strings.Contains(body, `sipwall_guard_success_admits_total{event="SuccessfulAuth",input="log"} 2`) {
		t.Errorf("metrics: %s", grepLines(body, "success"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// manager is an Asterisk manager on a real TCP socket that accepts any
// login, then sends the given event blocks (CRLF text as Asterisk writes
// it) and keeps the connection open.
func manager(t *testing.T, blocks ...string) (addr string, events chan<- string, login <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	more := make(chan string, 8)
	logins := make(chan string, 8)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("Asterisk Call Manager/9.0.0\r\n"))
		r := bufio.NewReader(c)
		var req []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line = strings.TrimRight(line, "\r\n"); line == "" {
				break
			}
			req = append(req, line)
		}
		logins <- strings.Join(req, "|")
		c.Write([]byte("Response: Success\r\nActionID: sipwall-login\r\nMessage: Authentication accepted\r\n\r\n"))
		for _, b := range blocks {
			c.Write([]byte(b + "\r\n"))
		}
		for b := range more {
			c.Write([]byte(b + "\r\n"))
		}
	}()
	return l.Addr().String(), more, logins
}

func TestAMIRegistrationsAdmit(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	addr, more, logins := manager(t,
		// res_pjsip (Asterisk 18): a phone registers, with its expiry.
		fmt.Sprintf("Event: ContactStatus\r\nPrivilege: system,all\r\nURI: sip:1001@198.51.100.7:5062;transport=udp\r\nContactStatus: Created\r\nAOR: 1001\r\nEndpointName: 1001\r\nRoundtripUsec: 0\r\nUserAgent: Yealink SIP-T46S 66.85.0.5\r\nRegExpire: %d\r\nViaAddress: 10.0.0.23:5062\r\nCallID: 0_2839402@10.0.0.23\r\n", exp),
		// chan_sip: a peer registers (no expiry in the event).
		"Event: PeerStatus\r\nPrivilege: system,all\r\nChannelType: SIP\r\nPeer: SIP/1003\r\nPeerStatus: Registered\r\nAddress: 203.0.113.44:5060\r\n",
		// Not admissions: a removed contact, a failure.
		"Event: ContactStatus\r\nPrivilege: system,all\r\nURI: sip:1002@198.51.100.70:5060\r\nContactStatus: Removed\r\nAOR: 1002\r\nEndpointName: 1002\r\n",
		"Event: InvalidPassword\r\nPrivilege: security,all\r\nEventTV: 2024-03-01T10:00:00.000+0000\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 2\r\nAccountID: 1004\r\nSessionID: x\r\nLocalAddress: IPV4/UDP/192.0.2.10/5060\r\nRemoteAddress: IPV4/UDP/203.0.113.50/5060\r\nChallenge: a\r\nReceivedChallenge: a\r\nReceivedHash: b\r\n",
	)
	defer close(more)
	fb := &ban.Fake{}
	g, err := New(Config{
		AMI:    []ami.Config{{Addr: addr, Username: "sipwall", Secret: "s"}},
		Jail:   jail.Config{MaxRetry: 3, FindTime: time.Hour, BanTime: time.Hour},
		Admit:  &Admit{},
		Banner: fb, Metrics: NewMetrics(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	if l := <-logins; !strings.Contains(l, "Events: security,system") {
		t.Errorf("login %q does not ask for system events", l)
	}
	waitFor(t, "both admissions", func() bool {
		return fb.Has(compile.SetAdmitted, netip.MustParseAddr("198.51.100.7")) && fb.Has(compile.SetAdmitted, netip.MustParseAddr("203.0.113.44"))
	})
	// The pjsip contact: its hour to RegExpire plus the 5 minute margin.
	if e := entryOf(fb, compile.SetAdmitted, "198.51.100.7"); !regexp.MustCompile(`^admitted 198\.51\.100\.7 1h(4m5\d|5m0)s? "authenticated as 1001 \(ContactStatus\)"$`).MatchString(e) {
		t.Errorf("pjsip contact %q", e)
	}
	if e := entryOf(fb, compile.SetAdmitted, "203.0.113.44"); e != `admitted 203.0.113.44 1h5m0s "authenticated as SIP/1003 (PeerStatus)"` {
		t.Errorf("chan_sip peer %q", e)
	}
	// The failure still counts: two more from the manager ban.
	fail := "Event: InvalidPassword\r\nPrivilege: security,all\r\nService: PJSIP\r\nAccountID: 1004\r\nLocalAddress: IPV4/UDP/192.0.2.10/5060\r\nRemoteAddress: IPV4/UDP/203.0.113.50/5060\r\n"
	more <- fail
	more <- fail
	waitFor(t, "ban", func() bool { return fb.Has(compile.SetBanned, netip.MustParseAddr("203.0.113.50")) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fb.Has(compile.SetAdmitted, netip.MustParseAddr("198.51.100.70")) {
		t.Error("a removed contact was admitted")
	}
}
