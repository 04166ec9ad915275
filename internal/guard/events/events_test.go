package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// corpusPath is fail2ban's own test file for its asterisk filter, shipped
// beside the repository.
const corpusPath = "../../../../shared/corpus/asterisk-logs/fail2ban-asterisk.log"

type corpusCase struct {
	lineNo  int
	line    string
	match   bool
	host    string
	time    string
	journal bool // after the filterOptions line: systemd journal entries
}

// readCorpus returns every annotated line of the corpus and every
// unannotated one.
func readCorpus(t testing.TB) (annotated []corpusCase, other []string) {
	t.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		t.Fatalf("the corpus is part of the test: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	var pending *corpusCase
	journal := false
	n := 0
	for s.Scan() {
		n++
		l := s.Text()
		if strings.HasPrefix(l, "# filterOptions:") && strings.Contains(l, "journal") {
			journal = true
		}
		if rest, ok := strings.CutPrefix(l, "# failJSON:"); ok {
			var j struct {
				Time  string `json:"time"`
				Match bool   `json:"match"`
				Host  string `json:"host"`
			}
			if err := json.Unmarshal([]byte(rest), &j); err != nil {
				t.Fatalf("corpus line %d: %v", n, err)
			}
			pending = &corpusCase{match: j.Match, host: j.Host, time: j.Time, journal: journal}
			continue
		}
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			other = append(other, l)
			continue
		}
		if pending == nil {
			t.Fatalf("corpus line %d is not annotated: %q", n, l)
		}
		pending.lineNo, pending.line = n, l
		annotated = append(annotated, *pending)
		pending = nil
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return annotated, other
}

func TestCorpusAttribution(t *testing.T) {
	cases, other := readCorpus(t)
	if len(cases) < 45 {
		t.Fatalf("only %d annotated lines read from the corpus", len(cases))
	}
	check := func(c corpusCase, line string) {
		t.Helper()
		ev, r, why := ClassifyIn([]byte(line), time.UTC)
		if !c.match {
			if r == Matched {
				t.Errorf("line %d: matched %v %v, want no match: %s", c.lineNo, ev.Kind, ev.Addr, line)
			}
			return
		}
		if r != Matched {
			t.Errorf("line %d: %v (%s), want %s: %s", c.lineNo, r, why, c.host, line)
			return
		}
		if want := netip.MustParseAddr(c.host); ev.Addr != want {
			t.Errorf("line %d: attributed to %v, want %v: %s", c.lineNo, ev.Addr, want, line)
		}
		if ev.Kind == KindNone || ev.Kind.String() == "" {
			t.Errorf("line %d: no kind", c.lineNo)
		}
		if c.time != "" && !c.journal {
			got := ev.Time.Format("2006-01-02T15:04:05")
			want := c.time
			if ev.NoYear { // fail2ban guesses the year; compare the rest
				got, want = got[5:], want[5:]
			}
			if got != want {
				t.Errorf("line %d: time %s, want %s", c.lineNo, got, want)
			}
		}
	}
	for _, c := range cases {
		check(c, c.line)
		if c.journal {
			// fail2ban's test prefixes journal entries with this.
			check(c, "server asterisk[123]: "+c.line)
		}
	}
	for _, l := range other {
		if ev, ok := Match([]byte(l)); ok {
			t.Errorf("comment line matched (%v %v): %s", ev.Kind, ev.Addr, l)
		}
	}
}

func TestInjectionAndFormats(t *testing.T) {
	const pfx = "[2024-03-01 10:00:00] NOTICE[1234] "
	const sec = "[2024-03-01 10:00:00] SECURITY[1234] res_security_log.c: "
	tests := []struct {
		name      string
		line      string
		want      Result
		kind      Kind
		addr      string
		port      uint16
		transport string
	}{
		{"registration: From forges a whole failure", pfx + `chan_sip.c: Registration from '<sip:x@y>' failed for '6.6.6.6' - Wrong password' failed for '1.2.3.4:5060' - Wrong password`,
			Matched, RegistrationFailed, "1.2.3.4", 5060, ""},
		{"registration: From full of addresses", pfx + `chan_sip.c: Registration from '"6.6.6.6" <sip:6.6.6.6@6.6.6.6:5060>' failed for '1.2.3.4' - No matching peer found`,
			Matched, RegistrationFailed, "1.2.3.4", 0, ""},
		{"registration: IPv6", pfx + `chan_sip.c: Registration from '<sip:1@x>' failed for '[2001:db8::7]:5060' - Wrong password`,
			Matched, RegistrationFailed, "2001:db8::7", 5060, ""},
		{"registration: From forges the log prefix of another message", pfx + `chan_sip.c: Registration from 'a NOTICE[2] manager.c: 6.6.6.6 failed to authenticate as 'x'' failed for '1.2.3.4' - Wrong password`,
			Matched, RegistrationFailed, "1.2.3.4", 0, ""},
		{"pjsip: From forges the address", pfx + `res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '"x' failed for '6.6.6.6:5060' (callid: a) - No matching endpoint found" <sip:x@y>' failed for '1.2.3.4:5060' (callid: b) - No matching endpoint found`,
			Rejected, NoMatchingEndpoint, "", 0, ""},
		{"pjsip: Call-ID forges the address", pfx + `res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:x@y>' failed for '1.2.3.4:5060' (callid: a) - No matching endpoint found' failed for '6.6.6.6:5060' (callid: b) - No matching endpoint found`,
			Rejected, NoMatchingEndpoint, "", 0, ""},
		{"pjsip: From and Call-ID agree on a forged address", pfx + `res_pjsip/pjsip_distributor.c: Request from 'a' failed for '6.6.6.6:1' (callid: b' failed for '1.2.3.4:5060' (callid: c) - No matching endpoint found' failed for '6.6.6.6:1' (callid: d) - No matching endpoint found`,
			Rejected, NoMatchingEndpoint, "", 0, ""},
		{"pjsip: Call-ID with spaces and parentheses", pfx + `res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:1@x>' failed for '1.2.3.4:5060' (callid: a (b) c) - Failed to authenticate`,
			Matched, AuthFailed, "1.2.3.4", 5060, ""},
		{"pjsip: IPv6", pfx + `res_pjsip/pjsip_distributor.c: Request 'OPTIONS' from '<sip:1@x>' failed for '[2001:db8::9]:5062' (callid: z) - Not match Endpoint ACL`,
			Matched, EndpointACLFailed, "2001:db8::9", 5062, ""},
		{"pjsip: unknown reason is flagged, not dropped", pfx + `res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:1@x>' failed for '1.2.3.4:5060' (callid: z) - Some new reason`,
			Rejected, KindNone, "", 0, ""},
		{"extension: exten forges a second address", pfx + `chan_sip.c: Call from '' (1.2.3.4:5060) to extension 'x' (6.6.6.6:1) to extension 'y' rejected because extension not found in context 'default'.`,
			Rejected, ExtensionNotFound, "", 0, ""},
		{"extension: name forges an address", pfx + `chan_sip.c: Call from 'a' (6.6.6.6:1) to extension '' (1.2.3.4:5060) to extension 'y' rejected because extension not found in context 'default'.`,
			Rejected, ExtensionNotFound, "", 0, ""},
		{"extension: pjsip WSS IPv6", pfx + `res_pjsip_session.c: Call from 'webrtc' (WSS:[2001:db8::3]:443) to extension '100' rejected because extension not found in context 'default'.`,
			Matched, ExtensionNotFound, "2001:db8::3", 443, WSS},
		{"iax2: peer name holds an address", pfx + `chan_iax2.c: No registration for peer 'x (from 6.6.6.6)' (from 1.2.3.4)`,
			Matched, IAX2NoSuchPeer, "1.2.3.4", 0, ""},
		{"manager: user name holds an address", pfx + `manager.c: 1.2.3.4 failed to authenticate as '6.6.6.6'`,
			Matched, AMILoginFailed, "1.2.3.4", 0, ""},
		{"manager: IP ACL", pfx + `manager.c: 2001:db8::2 failed to pass IP ACL as 'admin'`,
			Matched, AMILoginFailed, "2001:db8::2", 0, ""},
		{"security: AccountID forges RemoteAddress", sec + `SecurityEvent="InvalidAccountID",EventTV="1",Severity="Error",Service="SIP",EventVersion="1",AccountID="a",RemoteAddress="IPV4/UDP/6.6.6.6/5060",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/1.2.3.4/5060"`,
			Matched, InvalidAccountID, "1.2.3.4", 5060, UDP},
		{"security: escaped quote in a digest value is not a field boundary", sec + `SecurityEvent="ChallengeResponseFailed",EventTV="1",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/1.2.3.4/5060",Challenge="c",Response="x\",RemoteAddress=\"IPV4/UDP/6.6.6.6/1\",A=\"",ExpectedResponse=""`,
			Rejected, ChallengeResponseFailed, "", 0, ""},
		{"security: IPv6 WS", sec + `SecurityEvent="InvalidPassword",EventTV="1",Severity="Error",Service="PJSIP",EventVersion="2",AccountID="a",SessionID="s",LocalAddress="IPV6/WS/2001:db8::1/8088",RemoteAddress="IPV6/WS/2001:db8::66/40000",Challenge="c"`,
			Matched, InvalidPassword, "2001:db8::66", 40000, WS},
		{"security: IPv4-mapped is unmapped", sec + `SecurityEvent="RequestNotAllowed",EventTV="1",Severity="Error",Service="SIP",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV6/UDP/::/5060",RemoteAddress="IPV6/UDP/::ffff:192.0.2.9/5060",RequestType="SUBSCRIBE"`,
			Matched, RequestNotAllowed, "192.0.2.9", 5060, UDP},
		{"security: auth method", sec + `SecurityEvent="AuthMethodNotAllowed",EventTV="1",Severity="Error",Service="AMI",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV4/TCP/0.0.0.0/5038",RemoteAddress="IPV4/TCP/192.0.2.8/4000",AuthMethod="plain"`,
			Matched, AuthMethodNotAllowed, "192.0.2.8", 4000, TCP},
		{"security: unexpected address", sec + `SecurityEvent="UnexpectedAddress",EventTV="1",Severity="Error",Service="SIP",EventVersion="2",AccountID="a",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/192.0.2.10/5060",ExpectedAddress="IPV4/UDP/192.0.2.11/5060"`,
			Matched, UnexpectedAddress, "192.0.2.10", 5060, UDP},
		{"security: successful auth is not a failure", sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="SIP",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/192.0.2.10/5060",UsingPassword="1"`,
			NoMatch, KindNone, "", 0, ""},
		{"security: challenge sent is not a failure", sec + `SecurityEvent="ChallengeSent",EventTV="1",Severity="Informational",Service="SIP",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/192.0.2.10/5060",Challenge="x"`,
			NoMatch, KindNone, "", 0, ""},
		{"security: hostname instead of address", sec + `SecurityEvent="InvalidPassword",EventTV="1",Severity="Error",Service="SIP",EventVersion="1",AccountID="a",SessionID="s",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/evil.example/5060"`,
			Rejected, InvalidPassword, "", 0, ""},
		{"hacking: trailing text", pfx + `chan_sip.c: hacking attempt detected '1.2.3.4' x`,
			Rejected, HackingAttempt, "", 0, ""},
		{"an unknown prefix with failure words is flagged", `2024-03-01 something new: Registration from 'x' failed for '1.2.3.4' - Wrong password`,
			Rejected, KindNone, "", 0, ""},
		{"ordinary log line", pfx + `chan_sip.c: Peer 'trunk' is now Reachable. (25ms / 2000ms)`,
			NoMatch, KindNone, "", 0, ""},
		{"empty", ``, NoMatch, KindNone, "", 0, ""},
		{"RFC 3339 syslog stamp", `2024-03-01T10:00:00.123456+01:00 pbx asterisk[1]: NOTICE[2] chan_iax2.c: Host 192.0.2.44 failed MD5 authentication for 'x' (a != b)`,
			Matched, IAX2AuthFailed, "192.0.2.44", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, r, why := ClassifyIn([]byte(tt.line), time.UTC)
			if r != tt.want {
				t.Fatalf("result %v (%s), want %v; event %+v", r, why, tt.want, ev)
			}
			if r == Rejected && why == "" {
				t.Errorf("rejected without a reason")
			}
			if ev.Kind != tt.kind {
				t.Errorf("kind %v, want %v", ev.Kind, tt.kind)
			}
			if r != Matched {
				return
			}
			if want := netip.MustParseAddr(tt.addr); ev.Addr != want {
				t.Errorf("addr %v, want %v", ev.Addr, want)
			}
			if ev.Port != tt.port || ev.Transport != tt.transport {
				t.Errorf("port/transport %d/%q, want %d/%q", ev.Port, ev.Transport, tt.port, tt.transport)
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	tests := []struct {
		line   string
		want   string
		noYear bool
	}{
		{"[2024-03-01 10:00:00.250] NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "2024-03-01T10:00:00.25Z", false},
		{"[Mar  1 10:00:00] NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "0000-03-01T10:00:00Z", true},
		{"Mar  1 10:00:00 pbx asterisk[9]: NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "0000-03-01T10:00:00Z", true},
		{"2024-03-01T10:00:00Z pbx asterisk[9]: NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "2024-03-01T10:00:00Z", false},
		{"2024-03-01T10:00:00-0200 pbx asterisk[9]: NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "2024-03-01T12:00:00Z", false},
		{"[2024-13-01 10:00:00] NOTICE[1] manager.c: 192.0.2.1 failed to authenticate as 'a'", "0001-01-01T00:00:00Z", false},
	}
	for _, tt := range tests {
		ev, ok := Match([]byte(tt.line))
		if !ok {
			t.Errorf("no match: %s", tt.line)
			continue
		}
		ev2, _, _ := ClassifyIn([]byte(tt.line), time.UTC)
		if got := ev2.Time.UTC().Format(time.RFC3339Nano); got != tt.want || ev2.NoYear != tt.noYear {
			t.Errorf("%s: time %s noYear %v, want %s %v", tt.line, got, ev2.NoYear, tt.want, tt.noYear)
		}
		if ev.Addr != ev2.Addr {
			t.Errorf("Match and ClassifyIn disagree")
		}
	}
}

func TestClassifyAMI(t *testing.T) {
	block := "Event: InvalidPassword\r\nPrivilege: security,all\r\nEventTV: 2015-05-24T08:42:16.296+0300\r\n" +
		"Severity: Error\r\nService: SIP\r\nEventVersion: 2\r\nAccountID: 1001\r\n" +
		"SessionID: RemoteAddress: IPV4/UDP/6.6.6.6/5060\r\n" +
		"LocalAddress: IPV4/UDP/192.0.2.10/5060\r\nRemoteAddress: IPV4/UDP/198.51.100.7/5084\r\n" +
		"Challenge: abc\r\n\r\n"
	ev, r, why := ClassifyAMI([]byte(block))
	if r != Matched {
		t.Fatalf("%v: %s", r, why)
	}
	if ev.Kind != InvalidPassword || ev.Addr != netip.MustParseAddr("198.51.100.7") || ev.Port != 5084 || ev.Transport != UDP {
		t.Errorf("got %+v", ev)
	}
	if got := ev.Time.UTC().Format(time.RFC3339Nano); got != "2015-05-24T05:42:16.296Z" {
		t.Errorf("time %s", got)
	}

	old := "Event: FailedACL\nEventTV: 1368439853-500975\nRemoteAddress: IPV6/TCP/2001:db8::5/5038\n"
	ev, r, _ = ClassifyAMI([]byte(old))
	if r != Matched || ev.Addr != netip.MustParseAddr("2001:db8::5") || !ev.Time.Equal(time.Unix(1368439853, 500975000)) {
		t.Errorf("old form: %v %+v", r, ev)
	}

	twice := "Event: FailedACL\nRemoteAddress: IPV4/TCP/192.0.2.1/1\nRemoteAddress: IPV4/TCP/192.0.2.2/1\n"
	if _, r, why := ClassifyAMI([]byte(twice)); r != Rejected || why != WhyAmbiguous {
		t.Errorf("two RemoteAddress lines: %v %s", r, why)
	}
	ok := "Event: SuccessfulAuth\nRemoteAddress: IPV4/TCP/192.0.2.1/1\n"
	if _, r, _ := ClassifyAMI([]byte(ok)); r != NoMatch {
		t.Errorf("SuccessfulAuth: %v", r)
	}
}

// hostileLines are built to make a naive or backtracking matcher slow. The
// test asserts the outcome; BenchmarkHostile measures the speed.
func hostileLines() map[string][]byte {
	const pfx = "[2024-03-01 10:00:00] NOTICE[1] "
	mb := 1 << 20
	rep := func(s string) string { return strings.Repeat(s, mb/len(s)) }
	return map[string][]byte{
		"registration anchors":   []byte(pfx + "chan_sip.c: Registration from '" + rep("' failed for '") + "' - Wrong password"),
		"pjsip anchors":          []byte(pfx + "res_pjsip/pjsip_distributor.c: Request from '" + rep("' failed for '1.2.3.4' (callid: ) - ") + "No matching endpoint found"),
		"security anchors":       []byte("[2024-03-01 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\"" + rep("\",RemoteAddress=\"IPV4/UDP/1.2.3.4/1") + "\",X"),
		"security fields":        []byte("[2024-03-01 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\",RemoteAddress=\"IPV4/UDP/1.2.3.4/1\"" + rep(",A=\"\"") + ",B"),
		"extension anchors":      []byte(pfx + "chan_sip.c: Call from '" + rep(") to extension '(") + "' rejected because extension not found in context 'x'."),
		"brackets in the prefix": []byte(rep("[")),
		"levels in the prefix":   []byte(rep("NOTICE[1")),
		"no newline binary":      bytes.Repeat([]byte{0xff, 0xfe, 0, '\''}, mb/4),
	}
}

func TestHostileLines(t *testing.T) {
	for name, l := range hostileLines() {
		if ev, r, _ := ClassifyIn(l, time.UTC); r == Matched {
			t.Errorf("%s: matched %v %v", name, ev.Kind, ev.Addr)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	cases, _ := readCorpus(t)
	lines := make([][]byte, len(cases))
	for i, c := range cases {
		lines[i] = []byte(c.line)
	}
	allocs := testing.AllocsPerRun(20, func() {
		for _, l := range lines {
			Match(l)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per pass over the corpus, want 0", allocs)
	}
}

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		in   string
		addr string
		port uint16
		ok   bool
	}{
		{"1.2.3.4", "1.2.3.4", 0, true},
		{"1.2.3.4:5060", "1.2.3.4", 5060, true},
		{"[1.2.3.4]:61470", "1.2.3.4", 61470, true},
		{"[2001:db8::1]:5060", "2001:db8::1", 5060, true},
		{"[2001:db8::1]", "2001:db8::1", 0, true},
		{"2001:db8::1", "2001:db8::1", 0, true},
		{"::ffff:10.1.2.3", "10.1.2.3", 0, true},
		{"fe80::1%eth0", "fe80::1", 0, true},
		{"1.2.3.4:65536", "", 0, false},
		{"01.2.3.4", "", 0, false},
		{"1.2.3", "", 0, false},
		{"host.example", "", 0, false},
		{"[2001:db8::1]x", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		a, p, ok := parseHostPort([]byte(tt.in))
		if ok != tt.ok || (ok && (a != netip.MustParseAddr(tt.addr) || p != tt.port)) {
			t.Errorf("parseHostPort(%q) = %v %d %v, want %s %d %v", tt.in, a, p, ok, tt.addr, tt.port, tt.ok)
		}
	}
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::", "::1", "2001:db8::1", "::ffff:1.2.3.4", "1::2:3.4.5.6", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", ":::", "1.2.3.04"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, '%') {
			return // zones are dropped on purpose
		}
		got, ok := parseIP([]byte(s))
		want, err := netip.ParseAddr(s)
		if ok != (err == nil) {
			t.Fatalf("parseIP(%q) ok=%v, netip: %v", s, ok, err)
		}
		if ok && got != want.Unmap() {
			t.Fatalf("parseIP(%q) = %v, netip %v", s, got, want)
		}
	})
}

func FuzzClassify(f *testing.F) {
	cases, _ := readCorpus(f)
	for _, c := range cases {
		f.Add([]byte(c.line))
		if col, ok := colourise(c.line); ok {
			f.Add([]byte(col))
		}
	}
	for _, file := range []string{"testdata/fail2ban-freeswitch.log", "testdata/freeswitch-more.log", "testdata/kamailio.log"} {
		for _, c := range readAnnotated(f, file) {
			f.Add([]byte(c.line))
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, r, why := ClassifyIn(line, time.UTC)
		switch r {
		case Matched:
			if !ev.Addr.IsValid() || ev.Addr.Is4In6() || ev.Addr.Zone() != "" || ev.Kind == KindNone {
				t.Fatalf("matched with bad event %+v", ev)
			}
		case Rejected:
			if why == "" {
				t.Fatal("rejected without a reason")
			}
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	cases, other := readCorpus(b)
	var lines [][]byte
	n := 0
	for _, c := range cases {
		lines = append(lines, []byte(c.line))
		n += len(c.line) + 1
	}
	for _, l := range other {
		lines = append(lines, []byte(l))
		n += len(l) + 1
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, l := range lines {
			Match(l)
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(lines))/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkHostile(b *testing.B) {
	for name, l := range hostileLines() {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			b.SetBytes(int64(len(l)))
			for b.Loop() {
				ClassifyIn(l, time.UTC)
			}
		})
	}
}
