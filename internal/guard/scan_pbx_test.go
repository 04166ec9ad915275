package guard

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestScanMixedPBXLog scans one input holding FreeSWITCH, Kamailio and
// coloured Asterisk lines (the format is recognised per line): a
// FreeSWITCH password guesser is banned at the threshold, a phone's
// challenges ban nobody, and each line is attributed to its address.
func TestScanMixedPBXLog(t *testing.T) {
	var b strings.Builder
	// A phone: challenged on every registration, never a failure.
	for i := range 10 {
		b.WriteString("2024-03-01 10:00:" + two(i) + ".000000 [WARNING] sofia_reg.c:1793 SIP auth challenge (REGISTER) on sofia profile 'internal' for [1001@pbx] from ip 192.0.2.50\n")
	}
	// A guesser: five wrong passwords in a minute (user name hostile).
	for i := range 5 {
		b.WriteString("2024-03-01 10:01:" + two(i) + ".000000 [WARNING] sofia_reg.c:1737 SIP auth failure (REGISTER) on sofia profile 'internal' for [x] from ip 6.6.6.6@pbx] from ip 203.0.113.9\n")
	}
	b.WriteString("2024-03-01 10:02:00.000000 [WARNING] sofia_reg.c:2531 Can't find user [100@pbx] from 203.0.113.10\n")
	b.WriteString("Mar  1 10:02:01 pbx /usr/sbin/kamailio[9]: NOTICE: <script>: sipwall auth failure from 203.0.113.11 port 5060 proto udp code -2 method REGISTER user 1000\n")
	b.WriteString("Mar  1 10:02:02 pbx /usr/sbin/kamailio[9]: ALERT: <script>: ALERT: pike blocking INVITE from sip:x@y (IP:203.0.113.12:5060)\n")
	b.WriteString("[2024-03-01 10:02:03] \x1b[1;33mNOTICE\x1b[0m[2213]: \x1b[1;37mchan_sip.c\x1b[0m:28926 handle_request_register: Registration from '<sip:100@x>' failed for '203.0.113.13:5071' - Wrong password\n")
	rep, err := Scan(context.Background(), []Input{{Name: "mixed.log", R: strings.NewReader(b.String()), ModTime: time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)}}, Options{Location: time.UTC, KeepMatches: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{16: "203.0.113.10", 17: "203.0.113.11", 18: "203.0.113.12", 19: "203.0.113.13"}
	for i := 11; i <= 15; i++ {
		want[i] = "203.0.113.9"
	}
	if len(rep.Matches) != len(want) {
		t.Fatalf("%d matches, want %d: %+v", len(rep.Matches), len(want), rep.Matches)
	}
	for _, m := range rep.Matches {
		if want[m.Line] != m.Addr.String() {
			t.Errorf("line %d attributed to %v, want %s", m.Line, m.Addr, want[m.Line])
		}
	}
	verdicts := map[netip.Addr]string{}
	for _, a := range rep.Addresses {
		verdicts[a.Addr] = a.Verdict
	}
	if v := verdicts[netip.MustParseAddr("203.0.113.9")]; v != VerdictBan {
		t.Errorf("guesser: %q, want ban", v)
	}
	if v, ok := verdicts[netip.MustParseAddr("192.0.2.50")]; ok {
		t.Errorf("phone listed: %q", v)
	}
	for _, k := range []string{"FreeSWITCHAuthFailure", "FreeSWITCHUserNotFound", "KamailioAuthFailed", "KamailioPikeBlocked", "RegistrationFailed"} {
		if rep.Events[k] == 0 {
			t.Errorf("no %s in %v", k, rep.Events)
		}
	}
}

func two(i int) string { return string([]byte{byte('0' + i/10), byte('0' + i%10)}) }
