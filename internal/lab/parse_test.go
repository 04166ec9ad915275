package lab

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
)

func TestParseSippLog(t *testing.T) {
	const sep = "----------------------------------------------- 2026-01-01 00:00:00.000000\n"
	msg := func(dir, first, cseq string) string {
		return sep + "UDP message " + dir + ":\n\n" + first + "\nCSeq: " + cseq + "\nContent-Length: 0\n\n"
	}
	full := msg("sent (396 bytes)", "REGISTER sip:pbx.example-secret.net SIP/2.0", "1 REGISTER") +
		msg("sent (396 bytes)", "REGISTER sip:pbx.example-secret.net SIP/2.0", "1 REGISTER") +
		msg("received [445] bytes", "SIP/2.0 401 Unauthorized", "1 REGISTER") +
		msg("sent (591 bytes)", "REGISTER sip:pbx.example-secret.net SIP/2.0", "2 REGISTER") +
		msg("received [336] bytes", "SIP/2.0 200 OK", "2 REGISTER") +
		msg("sent (600 bytes)", "INVITE sip:200@pbx.example-secret.net SIP/2.0", "1 INVITE") +
		msg("received [336] bytes", "SIP/2.0 200 OK", "1 INVITE")
	reg, ans, re := parseSippLog(full)
	if !reg || !ans || re != 1 {
		t.Errorf("full exchange: registered %v, answered %v, retransmissions %d; want true, true, 1", reg, ans, re)
	}
	// A 401 is no registration; a 404 to the INVITE is no answered call.
	partial := msg("sent (396 bytes)", "REGISTER sip:x SIP/2.0", "1 REGISTER") +
		msg("received [445] bytes", "SIP/2.0 401 Unauthorized", "1 REGISTER") +
		msg("received [300] bytes", "SIP/2.0 404 Not Found", "1 INVITE")
	if reg, ans, re := parseSippLog(partial); reg || ans || re != 0 {
		t.Errorf("partial exchange: registered %v, answered %v, retransmissions %d; want false, false, 0", reg, ans, re)
	}
	if reg, ans, _ := parseSippLog(""); reg || ans {
		t.Error("an empty log registered or answered")
	}
}

func TestSumDrops(t *testing.T) {
	cs := []backend.Counter{
		{Table: "raw", Chain: "PREROUTING", Policy: true, Verdict: "accept", Packets: 900},
		{Table: "raw", Chain: "sipwall-public", Verdict: "drop", Packets: 3},
		{Table: "raw", Chain: "sipwall-scanner", Verdict: "drop", Packets: 5},
		{Table: "raw", Chain: "sipwall-sip", Packets: 7},
		{Table: "filter", Chain: "INPUT", Policy: true, Verdict: "drop", Packets: 11},
		{Table: "filter", Chain: "sipwall-trap-ban", Verdict: "drop", Packets: 13},
		{Table: "filter", Chain: "sipwall-input", Verdict: "accept", Packets: 17},
		{Table: "filter", Chain: "sipwall-traps", Verdict: "jump", Packets: 99},
	}
	if got, want := sumDrops(cs, func(c backend.Counter) bool { return c.Table == "raw" }), (Drops{Raw: 8, All: 32}); got != want {
		t.Errorf("sumDrops = %+v, want %+v", got, want)
	}
}

func TestMembership(t *testing.T) {
	m := entryMembers([]backend.Entry{
		{List: "scanners", Prefix: netip.MustParsePrefix("203.0.113.11/32")},
		{List: "trapped", Prefix: netip.MustParsePrefix("203.0.113.16/32")},
		{List: "admitted", Prefix: netip.MustParsePrefix("2001:db8:30::21/128")},
		{List: "allowed", Prefix: netip.MustParsePrefix("10.0.0.0/8")},
	})
	for addr, want := range map[string][]string{
		"203.0.113.11":    {"scanners"},
		"203.0.113.16":    {"trapped"},
		"2001:db8:30::21": {"admitted"},
		"10.1.2.3":        {"allowed"},
		"203.0.113.99":    nil,
	} {
		if got := m.of(addr); !reflect.DeepEqual(got, want) {
			t.Errorf("%s in %v, want %v", addr, got, want)
		}
	}
	m = recentMembers(map[string]string{
		"BADSIP": "src=203.0.113.11 ttl: 64 last_seen: 4295 oldest_pkt: 1 4295\n",
		"RLM":    "src=203.0.113.16 ttl: 64 last_seen: 4296 oldest_pkt: 1 4296\nsrc=203.0.113.11 ttl: 64 last_seen: 4296 oldest_pkt: 1 4296\n",
	})
	if got := m.of("203.0.113.11"); !reflect.DeepEqual(got, []string{"BADSIP", "RLM"}) {
		t.Errorf("xt_recent: 203.0.113.11 in %v", got)
	}
}

func TestMissingToolsNamePackages(t *testing.T) {
	absent := map[string]bool{"svmap": true, "svcrack": true, "sipp": true}
	err := checkTools(func(tool string) (string, error) {
		if absent[tool] {
			return "", errors.New("not found")
		}
		return "/usr/bin/" + tool, nil
	})
	var m *MissingError
	if !errors.As(err, &m) {
		t.Fatalf("err = %v, want a *MissingError", err)
	}
	if !reflect.DeepEqual(m.Packages, []string{"sip-tester", "sipvicious"}) {
		t.Errorf("packages %v, want [sip-tester sipvicious]", m.Packages)
	}
	if !strings.Contains(err.Error(), "apt-get install sip-tester sipvicious") || !strings.Contains(err.Error(), "svcrack") {
		t.Errorf("message %q does not say what to install", err)
	}
	if err := checkTools(func(string) (string, error) { return "/bin/x", nil }); err != nil {
		t.Errorf("nothing missing: %v", err)
	}
}

func TestScenariosCarryTheHostname(t *testing.T) {
	for name, text := range map[string]string{"register-call": registerCallXML, "register-flood": registerFloodXML} {
		out := tmpl(text)
		if strings.Contains(out, "{{") || !strings.Contains(out, "REGISTER sip:"+hostname+" SIP/2.0") {
			t.Errorf("%s: the REGISTER does not carry the secret hostname:\n%s", name, out)
		}
	}
	if !strings.Contains(kamailioCfg, "listen=udp:"+serverV4+":5060") || !strings.Contains(kamailioCfg, "listen=tcp:["+serverV6+"]:5060") {
		t.Error("kamailio.cfg does not listen on the server's addresses")
	}
}

func TestEvaluateFailsWhatFails(t *testing.T) {
	ok := func() *RunReport {
		after := true
		return &RunReport{
			Attackers:   []*Attacker{{Name: "svmap", Source: "203.0.113.11", SIPSent: 1}, {Name: "svmap-v6", Source: "2001:db8:20::11", SIPSent: 1}},
			Phones:      []*Phone{{Name: "phone-udp", Registered: true, CallAnswered: true}},
			Flood:       &Flood{Sent: 150, Answers: 22, RateLimited: true, RegistersAfter: true},
			SSH:         SSH{Phone: true, ScannerBefore: true, ScannerAfterBan: &after},
			Comeback:    Comeback{Crowd: 130, Blocked: true},
			SaveRestore: &SaveRestore{Available: true, ScannerBanned: true, PhoneAdmitted: true},
		}
	}
	s, art, none := ok(), ok(), ok()
	s.Name, art.Name, none.Name = "sipwall", "article", "none"
	for _, a := range append(art.Attackers, none.Attackers...) {
		a.SIPAnswers = 1
	}
	r := &Report{Backend: "iptables", Runs: []*RunReport{s, art, none}}
	r.Checks = evaluate(r, 0)
	if !r.Passed() {
		t.Fatalf("a good report failed: %+v", r.Checks)
	}
	s.Attackers[1].SIPAnswers = 2 // an IPv6 scanner got through
	s.Phones[0].RegisterRetransmissions = 2
	r.Checks = evaluate(r, 0)
	var failed []string
	for _, c := range r.Checks {
		if c.Result == "FAIL" {
			failed = append(failed, c.Name)
		}
	}
	want := []string{"every attacker receives 0 SIP answers, IPv6 included", "every phone registers and gets its call answered (UDP, TCP, IPv6)"}
	if !reflect.DeepEqual(failed, want) {
		t.Errorf("failed checks %v, want %v", failed, want)
	}
}

func TestParseGuardLog(t *testing.T) {
	log := `time=2026-01-01T10:00:00.000Z level=INFO msg="guard running" logs=0 ami=0 inspector=true
time=2026-01-01T10:00:01.000Z level=INFO msg=admitted addr=198.51.100.21 by=hostname match=pbx.example-secret.net
time=2026-01-01T10:00:01.100Z level=INFO msg="banned a SIP scanner" addr=203.0.113.11 signature=friendly-scanner
time=2026-01-01T10:00:01.200Z level=INFO msg=admitted addr=2001:db8:30::21 by=hostname match=pbx.example-secret.net
time=2026-01-01T10:00:01.300Z level=INFO msg="banned a SIP scanner" addr=2001:db8:20::11 signature=friendly-scanner
time=2026-01-01T10:00:01.400Z level=ERROR msg="admit failed" addr=198.51.100.99 err="no such set"
`
	admitted, scanners := parseGuardLog(log)
	if !reflect.DeepEqual(admitted, []string{"198.51.100.21", "2001:db8:30::21"}) || scanners != 2 {
		t.Errorf("admitted %v, scanners %d", admitted, scanners)
	}
}
