package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
)

// Report is what a lab run found, for people (WriteText) and machines (JSON).
type Report struct {
	Backend backend.Name `json:"backend"`
	Policy  string       `json:"policy"`
	Seconds float64      `json:"seconds"`
	Runs    []*RunReport `json:"runs"` // sipwall, article, none
	Checks  []Check      `json:"checks"`
	Notes   []string     `json:"notes,omitempty"`
}

// RunReport is the same traffic against one firewall.
type RunReport struct {
	Name        string       `json:"name"` // sipwall, article or none
	Firewall    string       `json:"firewall"`
	Attackers   []*Attacker  `json:"attackers"`
	Phones      []*Phone     `json:"phones"`
	Flood       *Flood       `json:"flood"`
	SSH         SSH          `json:"ssh"`
	Comeback    Comeback     `json:"comeback"`
	Drops       *Drops       `json:"drops,omitempty"`
	SaveRestore *SaveRestore `json:"save_restore,omitempty"`
	Guard       *Guard       `json:"guard,omitempty"`
	Errors      []string     `json:"errors,omitempty"`
}

// Guard is what sipwall guard did in the run (nftables backend), from its
// log.
type Guard struct {
	Command string `json:"command"`
	// Admitted are the sources admitted by their knock; Scanners the
	// sources banned by a scanner signature.
	Admitted []string `json:"admitted"`
	Scanners int      `json:"scanners_banned"`
}

// Attacker is one attack tool, counted at the attacker.
type Attacker struct {
	Name       string   `json:"name"`
	Source     string   `json:"source"`
	Command    string   `json:"command"`
	SIPSent    int      `json:"sip_sent"`
	SIPAnswers int      `json:"sip_answers"`
	SYNSent    int      `json:"syn_sent"`
	SYNACKs    int      `json:"synack_received"`
	Lists      []string `json:"lists"`
	Exit       string   `json:"exit"`
}

// Phone is one sipp phone registering and placing a call.
type Phone struct {
	Name                    string   `json:"name"`
	Transport               string   `json:"transport"`
	Source                  string   `json:"source"`
	Registered              bool     `json:"registered"`
	CallAnswered            bool     `json:"call_answered"`
	RegisterRetransmissions int      `json:"register_retransmissions"`
	SIPSent                 int      `json:"sip_sent"`
	SIPAnswers              int      `json:"sip_answers"`
	Lists                   []string `json:"lists"`
	Exit                    string   `json:"exit"`
}

// Flood is the phone that floods REGISTERs.
type Flood struct {
	Source      string   `json:"source"`
	Sent        int      `json:"registers_sent"`
	Answers     int      `json:"answers"`
	RateLimited bool     `json:"rate_limited"`
	Lists       []string `json:"lists"`
	// RegistersAfter: a normal register and call 1.5 s after the flood
	// succeed, so the phone was limited, not banned.
	RegistersAfter bool     `json:"registers_after"`
	ListsAfter     []string `json:"lists_after"`
	Exit           string   `json:"exit"`
}

// SSH says who reached the SSH port.
type SSH struct {
	Phone            bool   `json:"phone"`
	ScannerBefore    bool   `json:"port_scanner_before_scan"`
	ScannerAfterScan bool   `json:"port_scanner_after_scan"`
	ScannerAfterBan  *bool  `json:"port_scanner_after_ban,omitempty"`
	BanFor           string `json:"trap_ban_for"`
}

// Comeback is the first scanner returning after a crowd of other scanner
// sources.
type Comeback struct {
	Crowd      int      `json:"other_scanner_sources"`
	Source     string   `json:"source"`
	SIPSent    int      `json:"sip_sent"`
	SIPAnswers int      `json:"sip_answers"`
	SSH        bool     `json:"reached_ssh"`
	Lists      []string `json:"lists"`
	Blocked    bool     `json:"blocked"`
}

// SaveRestore is the lists' trip through save, a flushed ruleset and restore.
type SaveRestore struct {
	Available     bool     `json:"available"`
	Detail        string   `json:"detail"`
	ScannerBanned bool     `json:"scanner_still_banned"`
	ScannerLists  []string `json:"scanner_lists"`
	PhoneAdmitted bool     `json:"phone_still_admitted"`
	PhoneLists    []string `json:"phone_lists"`
}

// Check is one pass criterion, evaluated on the sipwall run.
type Check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // pass, FAIL, n/a
	Detail string `json:"detail,omitempty"`
}

// Passed reports whether no check failed.
func (r *Report) Passed() bool {
	for _, c := range r.Checks {
		if c.Result == "FAIL" {
			return false
		}
	}
	return true
}

// Run returns the run of that name (sipwall, article, none), or nil.
func (r *Report) Run(name string) *RunReport {
	for _, x := range r.Runs {
		if x.Name == name {
			return x
		}
	}
	return nil
}

func isV6(src string) bool { return strings.Contains(src, ":") }

// sipAttacker reports whether a sends SIP (not the port scanner or flooder).
func sipAttacker(a *Attacker) bool { return a.Name != portScanner.name && a.Name != synFlooder.name }

func evaluate(r *Report, banFor time.Duration) []Check {
	var out []Check
	add := func(name string, pass bool, detail string, a ...any) {
		res := "pass"
		if !pass {
			res = "FAIL"
		}
		out = append(out, Check{Name: name, Result: res, Detail: fmt.Sprintf(detail, a...)})
	}
	s, none, art := r.Run("sipwall"), r.Run("none"), r.Run("article")
	if s == nil || none == nil || art == nil {
		return []Check{{Name: "all three runs", Result: "FAIL"}}
	}

	// The tools must work, or zero answers would prove nothing.
	var silent []string
	for _, a := range none.Attackers {
		if sipAttacker(a) && a.SIPAnswers == 0 {
			silent = append(silent, a.Name)
		}
	}
	add("without a firewall, every SIP attacker gets answers (the tools work)", len(silent) == 0, "silent: %v", silent)

	var answered []string
	for _, a := range s.Attackers {
		if a.SIPAnswers > 0 {
			answered = append(answered, fmt.Sprintf("%s (%d)", a.Name, a.SIPAnswers))
		}
	}
	if s.Comeback.SIPAnswers > 0 {
		answered = append(answered, fmt.Sprintf("comeback (%d)", s.Comeback.SIPAnswers))
	}
	add("every attacker receives 0 SIP answers, IPv6 included", len(answered) == 0, "answered: %v", answered)

	var v6open []string
	for _, a := range art.Attackers {
		if isV6(a.Source) && a.SIPAnswers > 0 {
			v6open = append(v6open, a.Name)
		}
	}
	add("the article's ruleset leaves IPv6 open (its IPv6 scanners get answers)", len(v6open) > 0, "answered: %v", v6open)

	add("the port scanner reaches SSH before its scan, not after", s.SSH.ScannerBefore && !s.SSH.ScannerAfterScan,
		"before %v, after %v", s.SSH.ScannerBefore, s.SSH.ScannerAfterScan)
	add("the phones reach SSH", s.SSH.Phone, "")
	if s.SSH.ScannerAfterBan != nil {
		add("the trap ban ends after "+banFor.String(), *s.SSH.ScannerAfterBan, "port scanner reaches SSH again: %v", *s.SSH.ScannerAfterBan)
	} else {
		out = append(out, Check{Name: "the trap ban ends", Result: "n/a", Detail: "traps.ban_for is " + banFor.String() + ": too long to wait for"})
	}

	var bad []string
	for _, p := range s.Phones {
		if !p.Registered || !p.CallAnswered || p.RegisterRetransmissions > 1 {
			bad = append(bad, fmt.Sprintf("%s (registered %v, answered %v, retransmissions %d)", p.Name, p.Registered, p.CallAnswered, p.RegisterRetransmissions))
		}
	}
	add("every phone registers and gets its call answered (UDP, TCP, IPv6)", len(bad) == 0, "%v", bad)

	f := s.Flood
	add("the flooding phone is rate-limited, not banned", f.RateLimited && f.RegistersAfter && len(banLists(f.ListsAfter)) == 0,
		"%d REGISTERs, %d answered; registers afterwards: %v; lists %v", f.Sent, f.Answers, f.RegistersAfter, f.ListsAfter)

	cb := s.Comeback
	add(fmt.Sprintf("the first scanner is still blocked when it comes back after %d other scanners", cb.Crowd),
		cb.Blocked, "SIP answers %d, SSH reached %v, lists %v; the article's run: SSH reached %v", cb.SIPAnswers, cb.SSH, cb.Lists, art.Comeback.SSH)

	sr := s.SaveRestore
	switch {
	case sr == nil || !sr.Available:
		detail := "not available yet"
		if sr != nil {
			detail = sr.Detail
		}
		out = append(out, Check{Name: "the lists survive save, a flush and restore", Result: "n/a", Detail: detail})
	default:
		add("the lists survive save, a flush and restore", sr.ScannerBanned && sr.PhoneAdmitted,
			"scanner banned %v (lists %v), phone admitted %v (lists %v): %s", sr.ScannerBanned, sr.ScannerLists, sr.PhoneAdmitted, sr.PhoneLists, sr.Detail)
	}
	var errs []string
	for _, x := range r.Runs {
		for _, e := range x.Errors {
			errs = append(errs, x.Name+": "+e)
		}
	}
	add("no step of the lab failed", len(errs) == 0, "%v", errs)
	return out
}

func banLists(lists []string) []string {
	var out []string
	for _, l := range lists {
		if l == "banned" || l == "scanners" || l == "trapped" || l == "BADSIP" || l == "RLM" {
			out = append(out, l)
		}
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func lists(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

// WriteText writes the report for people: one table per subject, the
// three runs side by side.
func (r *Report) WriteText(w io.Writer) {
	s, art, none := r.Run("sipwall"), r.Run("article"), r.Run("none")
	fmt.Fprintf(w, "sipwall lab: backend %s, policy %s, %.0f s\n", r.Backend, r.Policy, r.Seconds)
	fmt.Fprintf(w, "the same traffic three times: sipwall (%s) | the article's ruleset | no firewall\n\n", s.Firewall)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACKER\tSOURCE\tSENT\tANSWERS sipwall | article | none\tLISTS sipwall | article")
	for i, a := range s.Attackers {
		b, c := art.Attackers[i], none.Attackers[i]
		sent, ans := a.SIPSent, fmt.Sprintf("%d | %d | %d", a.SIPAnswers, b.SIPAnswers, c.SIPAnswers)
		if !sipAttacker(a) {
			sent = a.SYNSent
			ans = fmt.Sprintf("%d | %d | %d SYN-ACK", a.SYNACKs, b.SYNACKs, c.SYNACKs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s | %s\n", a.Name, a.Source, sent, ans, lists(a.Lists), lists(b.Lists))
	}
	tw.Flush()
	fmt.Fprintln(w, "(SENT: in the sipwall run, SIP requests, or SYNs for portscan and hping3, counted at the attacker; ANSWERS: SIP answers, or SYN-ACKs, it received)")
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "PHONE\tSOURCE\tREGISTERED sipwall | article | none\tCALL ANSWERED\tRETRANSMITTED REGISTER")
	for i, p := range s.Phones {
		b, c := art.Phones[i], none.Phones[i]
		fmt.Fprintf(tw, "%s (%s)\t%s\t%s | %s | %s\t%s | %s | %s\t%d | %d | %d\n", p.Name, p.Transport, p.Source,
			yes(p.Registered), yes(b.Registered), yes(c.Registered), yes(p.CallAnswered), yes(b.CallAnswered), yes(c.CallAnswered),
			p.RegisterRetransmissions, b.RegisterRetransmissions, c.RegisterRetransmissions)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "REGISTER FLOOD (%s)\tsipwall\tarticle\tnone\n", s.Flood.Source)
	fmt.Fprintf(tw, "REGISTERs sent / answered\t%d / %d\t%d / %d\t%d / %d\n", s.Flood.Sent, s.Flood.Answers, art.Flood.Sent, art.Flood.Answers, none.Flood.Sent, none.Flood.Answers)
	fmt.Fprintf(tw, "rate-limited\t%s\t%s\t%s\n", yes(s.Flood.RateLimited), yes(art.Flood.RateLimited), yes(none.Flood.RateLimited))
	fmt.Fprintf(tw, "registers and calls 1.5 s later\t%s\t%s\t%s\n", yes(s.Flood.RegistersAfter), yes(art.Flood.RegistersAfter), yes(none.Flood.RegistersAfter))
	tw.Flush()
	fmt.Fprintln(w)
	after := func(x *RunReport) string {
		if x.SSH.ScannerAfterBan == nil {
			return "-"
		}
		return yes(*x.SSH.ScannerAfterBan)
	}
	fmt.Fprintln(tw, "SSH REACHABLE\tsipwall\tarticle\tnone")
	fmt.Fprintf(tw, "from a phone\t%s\t%s\t%s\n", yes(s.SSH.Phone), yes(art.SSH.Phone), yes(none.SSH.Phone))
	fmt.Fprintf(tw, "from the port scanner, before its scan\t%s\t%s\t%s\n", yes(s.SSH.ScannerBefore), yes(art.SSH.ScannerBefore), yes(none.SSH.ScannerBefore))
	fmt.Fprintf(tw, "from the port scanner, after its scan\t%s\t%s\t%s\n", yes(s.SSH.ScannerAfterScan), yes(art.SSH.ScannerAfterScan), yes(none.SSH.ScannerAfterScan))
	fmt.Fprintf(tw, "from the port scanner, trap ban (%s) over\t%s\t%s\t%s\n", s.SSH.BanFor, after(s), after(art), after(none))
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "FIRST SCANNER BACK AFTER %d OTHERS (%s)\tsipwall\tarticle\tnone\n", s.Comeback.Crowd, s.Comeback.Source)
	fmt.Fprintf(tw, "SIP answers\t%d\t%d\t%d\n", s.Comeback.SIPAnswers, art.Comeback.SIPAnswers, none.Comeback.SIPAnswers)
	fmt.Fprintf(tw, "reaches SSH\t%s\t%s\t%s\n", yes(s.Comeback.SSH), yes(art.Comeback.SSH), yes(none.Comeback.SSH))
	fmt.Fprintf(tw, "lists\t%s\t%s\t-\n", lists(s.Comeback.Lists), lists(art.Comeback.Lists))
	tw.Flush()
	fmt.Fprintln(w)
	if s.Drops != nil && art.Drops != nil {
		fmt.Fprintln(tw, "KERNEL COUNTERS (packets dropped)\tsipwall\tarticle")
		fmt.Fprintf(tw, "before conntrack (the article's \"how effective\" sum)\t%d\t%d\n", s.Drops.Raw, art.Drops.Raw)
		fmt.Fprintf(tw, "all drop rules and policies\t%d\t%d\n", s.Drops.All, art.Drops.All)
		tw.Flush()
		fmt.Fprintln(w)
	}
	if sr := s.SaveRestore; sr != nil {
		if !sr.Available {
			fmt.Fprintf(w, "save / flush / restore: %s\n\n", sr.Detail)
		} else {
			fmt.Fprintf(w, "save / flush / restore (%s): scanner still banned %s (lists %s), phone still admitted %s (lists %s)\n\n",
				sr.Detail, yes(sr.ScannerBanned), lists(sr.ScannerLists), yes(sr.PhoneAdmitted), lists(sr.PhoneLists))
		}
	}
	if g := s.Guard; g != nil {
		fmt.Fprintf(w, "sipwall guard (%s): admitted %d sources by their knock (%s), banned %d SIP scanners\n\n",
			g.Command, len(g.Admitted), strings.Join(g.Admitted, ", "), g.Scanners)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n\n", n)
	}
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, c := range r.Checks {
		d := c.Detail
		if c.Result == "pass" {
			d = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Result, d)
	}
	tw.Flush()
	for _, x := range r.Runs {
		for _, e := range x.Errors {
			fmt.Fprintf(w, "error (%s): %s\n", x.Name, e)
		}
	}
}
