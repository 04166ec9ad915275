package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestLab runs the whole lab for each backend: real scanners and phones
// against Kamailio behind sipwall, the article's ruleset and no firewall.
// Each pass criterion of the lab is asserted here, on the report.
func TestLab(t *testing.T) {
	if testing.Short() {
		t.Skip("the lab takes about 20 s per backend, guard included")
	}
	tools := make([]string, 0, len(toolPackages))
	for tool := range toolPackages {
		tools = append(tools, tool)
	}
	nstest.RequireRoot(t, tools...)
	bin := filepath.Join(t.TempDir(), "sipwall")
	build := exec.Command("go", "build", "-o", bin, "github.com/sipwall/sipwall/cmd/sipwall")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	start := time.Now()
	for _, backend := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(backend), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var progress bytes.Buffer
			r, err := Run(ctx, Options{Backend: backend, Sipwall: bin, Log: &progress})
			if err != nil {
				t.Fatalf("%v\n%s", err, progress.String())
			}
			var text bytes.Buffer
			r.WriteText(&text)
			t.Logf("report:\n%s", text.String())
			checkReport(t, r)
		})
	}
	t.Logf("both backends: %s", time.Since(start).Round(time.Second))
	if d := time.Since(start); d > 5*time.Minute {
		t.Errorf("the lab took %s for both backends; it must stay under 5 minutes (about 40 s on 2 idle cores)", d.Round(time.Second))
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	prefix := nsPrefix + strconv.Itoa(os.Getpid()) + "-"
	if strings.Contains(string(out), prefix) {
		t.Errorf("namespaces left behind:\n%s", out)
	}
}

func checkReport(t *testing.T, r *Report) {
	t.Helper()
	s, art, none := r.Run("sipwall"), r.Run("article"), r.Run("none")
	if s == nil || art == nil || none == nil {
		t.Fatalf("runs missing: %+v", r.Runs)
	}
	for _, x := range r.Runs {
		for _, e := range x.Errors {
			t.Errorf("%s: %s", x.Name, e)
		}
	}
	// The tools work: with no firewall every SIP attacker gets answers.
	for _, a := range none.Attackers {
		if sipAttacker(a) && (a.SIPSent == 0 || a.SIPAnswers == 0) {
			t.Errorf("no firewall: %s sent %d, got %d answers: the tool does not work", a.Name, a.SIPSent, a.SIPAnswers)
		}
	}
	// Every attacker receives 0 SIP answers, IPv6 included.
	for _, a := range s.Attackers {
		if sipAttacker(a) && a.SIPSent == 0 {
			t.Errorf("%s sent nothing", a.Name)
		}
		if a.SIPAnswers != 0 {
			t.Errorf("%s (%s) got %d SIP answers through sipwall", a.Name, a.Source, a.SIPAnswers)
		}
	}
	// The article leaves IPv6 open.
	for _, a := range art.Attackers {
		if isV6(a.Source) && a.SIPAnswers == 0 {
			t.Errorf("article: the IPv6 attacker %s got no answer; the article's ruleset has no IPv6 part", a.Name)
		}
	}
	// Every attacker with a scanner signature is banned as a scanner (by
	// the kernel's string match on iptables, by guard on nftables).
	for _, a := range s.Attackers {
		if strings.HasPrefix(a.Name, "sv") || a.Name == "sipsak" {
			if !contains(a.Lists, "scanners") {
				t.Errorf("%s (%s) is not in the scanners list: %v", a.Name, a.Source, a.Lists)
			}
		}
	}
	// SSH: the port scanner is trapped, the phones are not; the ban ends.
	ps := find(s.Attackers, portScanner.name)
	if !s.SSH.ScannerBefore || s.SSH.ScannerAfterScan {
		t.Errorf("port scanner and SSH: before the scan %v (want true), after %v (want false)", s.SSH.ScannerBefore, s.SSH.ScannerAfterScan)
	}
	if !contains(ps.Lists, "trapped") {
		t.Errorf("the port scanner is not in the trapped list: %v", ps.Lists)
	}
	if !s.SSH.Phone {
		t.Error("the phone cannot reach SSH")
	}
	if s.SSH.ScannerAfterBan == nil || !*s.SSH.ScannerAfterBan {
		t.Errorf("the trap ban (%s) did not end", s.SSH.BanFor)
	}
	if !none.SSH.ScannerAfterScan {
		t.Error("no firewall: the port scanner should reach SSH")
	}
	// Phones register and get their call answered.
	for _, p := range s.Phones {
		if !p.Registered || !p.CallAnswered || p.RegisterRetransmissions > 1 {
			t.Errorf("%s: registered %v, call answered %v, first REGISTER retransmitted %d times (%s)",
				p.Name, p.Registered, p.CallAnswered, p.RegisterRetransmissions, p.Exit)
		}
	}
	// The phones are admitted (their knock), and banned nowhere.
	for _, p := range s.Phones {
		if !contains(p.Lists, "admitted") || len(banLists(p.Lists)) > 0 {
			t.Errorf("%s (%s) lists %v: want admitted and no ban", p.Name, p.Source, p.Lists)
		}
	}
	// On nftables guard did it: it admitted the phones and the flooding
	// phone, and banned the scanners and the crowd.
	if r.Backend == "nftables" {
		g := s.Guard
		if g == nil {
			t.Fatal("nftables: no guard in the run")
		}
		for _, p := range append(s.Phones, &Phone{Name: floodPhone.name, Source: floodPhone.src}) {
			if !contains(g.Admitted, p.Source) {
				t.Errorf("guard did not admit %s (%s): admitted %v", p.Name, p.Source, g.Admitted)
			}
		}
		if want := 7 + s.Comeback.Crowd; g.Scanners < want {
			t.Errorf("guard banned %d scanners, want at least %d (7 sipvicious and sipsak sources, the crowd)", g.Scanners, want)
		}
	}
	// The flooding phone is rate-limited, not banned.
	f := s.Flood
	if !f.RateLimited || f.Answers == 0 || f.Answers >= f.Sent/2 {
		t.Errorf("flood: %d REGISTERs, %d answered: want some answered and most dropped", f.Sent, f.Answers)
	}
	if !f.RegistersAfter || len(banLists(f.ListsAfter)) > 0 {
		t.Errorf("flood: the phone is banned (registers afterwards %v, lists %v)", f.RegistersAfter, f.ListsAfter)
	}
	if none.Flood.Answers != none.Flood.Sent {
		t.Errorf("no firewall: %d of %d flood REGISTERs answered", none.Flood.Answers, none.Flood.Sent)
	}
	// More than 100 scanner sources later, the first scanner is still
	// blocked; the article's lists forgot it.
	cb := s.Comeback
	if cb.Crowd <= 100 {
		t.Errorf("only %d other scanner sources", cb.Crowd)
	}
	if cb.SIPSent == 0 || cb.SIPAnswers != 0 {
		t.Errorf("comeback: %d sent, %d answers", cb.SIPSent, cb.SIPAnswers)
	}
	if !cb.Blocked || cb.SSH || !contains(cb.Lists, "scanners") {
		t.Errorf("comeback: blocked %v, SSH %v, lists %v", cb.Blocked, cb.SSH, cb.Lists)
	}
	if !art.Comeback.SSH {
		t.Errorf("article: after %d scanners the first one should be forgotten and reach SSH", art.Comeback.Crowd)
	}
	// The lists survive save, flush and restore.
	sr := s.SaveRestore
	switch {
	case sr == nil:
		t.Error("no save/restore step")
	case !sr.Available:
		t.Logf("save/restore: %s", sr.Detail)
	default:
		if !sr.ScannerBanned || !sr.PhoneAdmitted {
			t.Errorf("save/restore: scanner banned %v (%v), phone admitted %v (%v): %s",
				sr.ScannerBanned, sr.ScannerLists, sr.PhoneAdmitted, sr.PhoneLists, sr.Detail)
		}
		if !contains(sr.ScannerLists, "scanners") || !contains(sr.PhoneLists, "admitted") {
			t.Errorf("save/restore: scanner lists %v, phone lists %v", sr.ScannerLists, sr.PhoneLists)
		}
	}
	// The kernel counters: both firewalls dropped something before conntrack.
	if s.Drops == nil || s.Drops.Raw == 0 || art.Drops == nil || art.Drops.Raw == 0 {
		t.Errorf("kernel drop counters: sipwall %+v, article %+v", s.Drops, art.Drops)
	}
	for _, c := range r.Checks {
		if c.Result == "FAIL" {
			t.Errorf("check failed: %s: %s", c.Name, c.Detail)
		}
	}
}

func find(as []*Attacker, name string) *Attacker {
	for _, a := range as {
		if a.Name == name {
			return a
		}
	}
	return &Attacker{}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
