package lab

import (
	"errors"
	"reflect"
	"strings"
	"testing"
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

func TestIPTablesDrops(t *testing.T) {
	save := `*raw
:PREROUTING ACCEPT [900:1000]
[3:300] -A sipwall-public -m set --match-set sipwall-scanners4 src -j DROP
[5:500] -A sipwall-scanner -j DROP
[7:700] -A sipwall-sip -j SET --add-set sipwall-admitted4 src --exist
COMMIT
*filter
:INPUT DROP [11:1100]
[13:1300] -A sipwall-trap-ban -j DROP
[17:1700] -A sipwall-input -p tcp --dport 2222 -j ACCEPT
COMMIT
`
	if got, want := iptablesDrops(save), (Drops{Raw: 8, All: 32}); got != want {
		t.Errorf("iptablesDrops = %+v, want %+v", got, want)
	}
}

func TestNFTDrops(t *testing.T) {
	listing := `table inet sipwall {
	chain sipwall-public {
		meta nfproto ipv4 ip saddr @scanners4 counter packets 4 bytes 400 drop comment "banned as a SIP scanner"
	}
	chain sipwall-scanner {
		counter packets 6 bytes 600 drop comment "drop the scanner's packet"
	}
	chain sipwall-traps {
		meta l4proto tcp tcp dport 21 counter packets 10 bytes 1000 drop comment "port 21: drop"
		meta l4proto tcp tcp dport 22 counter packets 99 bytes 1000 jump sipwall-trap-ban
	}
}
`
	if got, want := nftDrops(listing), (Drops{Raw: 10, All: 20}); got != want {
		t.Errorf("nftDrops = %+v, want %+v", got, want)
	}
}

func TestMembership(t *testing.T) {
	ipset := "create sipwall-scanners4 hash:ip family inet timeout 0\nadd sipwall-scanners4 203.0.113.11\nadd sipwall-trapped4 203.0.113.16 timeout 7\nadd sipwall-admitted6 2001:db8:30:0::21 timeout 0\nadd sipwall-rate-x4 203.0.113.11\n"
	m := ipsetMembers(ipset)
	for addr, want := range map[string][]string{
		"203.0.113.11":    {"scanners"},
		"203.0.113.16":    {"trapped"},
		"2001:db8:30::21": {"admitted"},
		"203.0.113.99":    nil,
	} {
		if got := m.of(addr); !reflect.DeepEqual(got, want) {
			t.Errorf("ipset: %s in %v, want %v", addr, got, want)
		}
	}
	nftJSON := `{"nftables": [{"metainfo": {}},
{"set": {"family": "inet", "name": "allowed4", "table": "sipwall", "elem": [{"range": ["198.51.100.21", "198.51.100.23"]}, {"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
{"set": {"family": "inet", "name": "trapped4", "table": "sipwall", "elem": [{"elem": {"val": "203.0.113.16", "timeout": 8, "expires": 5}}]}},
{"set": {"family": "inet", "name": "rate-register4", "table": "sipwall", "elem": ["198.51.100.23"]}}]}`
	m = nftMembers(nftJSON)
	for addr, want := range map[string][]string{
		"198.51.100.22": {"allowed"},
		"10.1.2.3":      {"allowed"},
		"203.0.113.16":  {"trapped"},
		"198.51.100.24": nil,
	} {
		if got := m.of(addr); !reflect.DeepEqual(got, want) {
			t.Errorf("nft: %s in %v, want %v", addr, got, want)
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
