// Package replay evaluates a compiled ruleset on captured traffic: it reads
// pcap and pcapng files (package capture), merges them in timestamp order,
// decodes every frame (package packet), hands the packets to and from the
// host's addresses to the engine, and builds a report: per-rule counters in
// the shape of iptables -nvL / nft list ruleset, per-source verdicts, the
// lists each source entered and when, and totals.
//
// Packets to a local address arrive at the host; packets from one leave it.
// The host's captured answers to packets the ruleset drops are suppressed
// (it would never have sent them), so they do not teach conntrack a flow
// the firewall refused.
//
// With the nftables backend the knock and the scanner signatures are
// checked by sipwall guard on the packets the ruleset hands to nflog.
// Replay runs guard's own inspector (package inspect) on exactly those
// packets, in order, after the kernel has decided each (nflog is
// asynchronous), and puts the sources it decides into the admitted and
// scanners sets Guard.Delay later, as guard does (see Guard); without
// Options.Guard the kernel's ruleset is evaluated alone.
package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/sipwall/sipwall/internal/capture"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/sip"
)

// Options configure a replay.
type Options struct {
	// Local are the host's addresses.
	Local []netip.Addr
	// Iface is the interface packets arrive on (default eth0).
	Iface string
	// Hostnames are the policy's secret hostnames: a source whose REGISTER
	// carries one is a phone (the report's sent_hostname and locked_out).
	Hostnames []string
	// Guard, when set, models sipwall guard for a ruleset that hands SIP
	// packets to nflog (nftables): GuardFromPolicy.
	Guard *Guard
	// Progress, when set, is called now and then with the bytes read so far.
	Progress func(read int64)
	// Trace, when set, is called for every packet to or from a local
	// address with the engine's verdict (the differential test against the
	// kernel uses it to send exactly the host answers the engine keeps).
	Trace func(file string, packet int, dir engine.Direction, v engine.Verdict)
}

// Input is one capture to replay.
type Input struct {
	Name string
	R    io.Reader
}

// List names as the report gives them.
const (
	ListAdmitted    = "admitted"
	ListScanner     = "scanner-banned"
	ListTrapped     = "trap-banned"
	ListRateLimited = "rate-limited"
	// ListAnswered: banned for the failure answers the host sent it
	// (sip.answers).
	ListAnswered = "answer-banned"
)

// ListEntry is a list a source entered, and when.
type ListEntry struct {
	List string    `json:"list"`
	At   time.Time `json:"at"`
}

// RuleRef names a rule.
type RuleRef struct {
	Family   string `json:"family"`
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Position int    `json:"position"`
	Text     string `json:"text"`
}

// Drop is the first drop of a source.
type Drop struct {
	RuleRef
	At     time.Time `json:"at"`
	Packet int       `json:"packet"`
	File   string    `json:"file"`
}

// Source is what happened to one source address.
type Source struct {
	Addr        netip.Addr  `json:"addr"`
	Packets     int         `json:"packets"`
	Bytes       uint64      `json:"bytes"`
	Accepted    int         `json:"accepted"`
	Dropped     int         `json:"dropped"`
	SIPRequests int         `json:"sip_requests"`
	SIPAccepted int         `json:"sip_accepted"`
	Lists       []ListEntry `json:"lists"`
	FirstDrop   *Drop       `json:"first_drop,omitempty"`
	UserAgents  []string    `json:"user_agents"`
	// Knocked: the source sent a REGISTER carrying a configured hostname.
	Knocked bool `json:"sent_hostname"`
	// Methods counts the source's SIP requests by method.
	Methods map[string]*MethodCount `json:"methods"`
	// FailureAnswers counts the failure answers (401, 403, 407, 404,
	// 484) the host sent the source, of those the ruleset let it send.
	FailureAnswers int       `json:"failure_answers,omitempty"`
	FirstAt        time.Time `json:"first_seen"`
	LastAt         time.Time `json:"last_seen"`
	lists          uint8
	// The method counted last, for the next request of the source.
	lastMethod []byte
	lastMC     *MethodCount
}

// MethodCount counts requests of one method.
type MethodCount struct {
	Seen     int `json:"seen"`
	Accepted int `json:"accepted"`
}

// RuleCount is one rule's counters.
type RuleCount struct {
	RuleRef
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// PolicyCount is one base chain policy's counters.
type PolicyCount struct {
	Chain   string `json:"chain"`
	Policy  string `json:"policy"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Totals sum the report up.
type Totals struct {
	// ScanAttemptsThwarted: packets dropped from sources banned as
	// scanners or caught by a trap port (the article's sum of its BADSIP
	// and trap counters, whichever rule did the dropping).
	ScanAttemptsThwarted uint64 `json:"scan_attempts_thwarted"`
	SourcesBanned        int    `json:"sources_banned"`
	PhonesAdmitted       int    `json:"phones_admitted"`
	// LockedOut lists every source that sent a REGISTER carrying a
	// configured hostname but still had a request dropped.
	LockedOut []netip.Addr `json:"locked_out"`
}

// Report is the result of a replay.
type Report struct {
	Backend   string        `json:"backend"`
	Files     []string      `json:"files"`
	Local     []netip.Addr  `json:"local"`
	Guard     bool          `json:"guard"`
	First     time.Time     `json:"first"`
	Last      time.Time     `json:"last"`
	Frames    int           `json:"frames"`
	Packets   int           `json:"packets"` // packets to the host, evaluated
	Accepted  int           `json:"accepted"`
	Dropped   int           `json:"dropped"`
	Outgoing  int           `json:"outgoing"`            // packets from the host, evaluated
	Suppress  int           `json:"suppressed"`          // answers the host would not have sent
	Other     int           `json:"other"`               // frames neither to nor from the host, or not IP
	Held      int           `json:"fragments_held"`      // IP fragments queued for reassembly (their datagram counts once)
	Discarded int           `json:"fragments_discarded"` // IP fragments the reassembly dropped
	Sources   []*Source     `json:"sources"`
	Rules     []RuleCount   `json:"rules"`
	Policies  []PolicyCount `json:"policies"`
	Totals    Totals        `json:"totals"`
	Warnings  []string      `json:"warnings"`
	Complete  bool          `json:"complete"`
	bySource  map[netip.Addr]*Source
	undecoded int
}

// maxUserAgents bounds the user-agents kept per source.
const maxUserAgents = 8

// maxWarnings bounds the warnings kept (the rest are counted).
const maxWarnings = 50

type stream struct {
	name string
	rd   *capture.Reader
	rec  capture.Record
	ok   bool
	cnt  *countingReader
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Run replays the inputs through a fresh engine for prog. It returns the
// report, complete or not, and an error when the report is incomplete
// (a capture could not be read to its end, a packet could not be decoded,
// no packet reached the host).
func Run(prog *engine.Program, inputs []Input, opt Options) (*Report, error) {
	eng := engine.New(prog, engine.Options{Iface: opt.Iface, Outgoing: true})
	rep := &Report{Backend: string(prog.Backend), Local: opt.Local, Guard: opt.Guard != nil, bySource: map[netip.Addr]*Source{}}
	var errs []error
	warn := func(err error) {
		errs = append(errs, err)
		if len(rep.Warnings) < maxWarnings {
			rep.Warnings = append(rep.Warnings, err.Error())
		}
	}
	var streams []*stream
	for _, in := range inputs {
		rep.Files = append(rep.Files, in.Name)
		cr := &countingReader{r: in.R}
		rd, err := capture.NewReader(in.Name, cr)
		if err != nil {
			warn(err)
			continue
		}
		s := &stream{name: in.Name, rd: rd, cnt: cr}
		streams = append(streams, s)
	}
	advance := func(s *stream) {
		rec, err := s.rd.Next()
		if err != nil {
			s.ok = false
			if !errors.Is(err, io.EOF) {
				warn(err)
			}
			return
		}
		s.rec, s.ok = rec, true
	}
	r := &runner{eng: eng, rep: rep, opt: opt, prog: prog, hints: new(stringHints), bySlot: new([1 << 14]*Source)}
	if opt.Guard != nil {
		g, err := newGuardModel(opt.Guard, opt.Local)
		if err != nil {
			return rep, fmt.Errorf("guard: %w", err)
		}
		r.guard = g
	}
	for _, h := range opt.Hostnames {
		r.hosts = append(r.hosts, newFoldFinder(h))
	}
	// Reading, decoding and scanning the SIP requests run in a goroutine of
	// their own, a batch of frames ahead of the engine. The producer alone
	// touches the streams, rep.Frames, rep.undecoded and the warnings until
	// it closes full; the engine and the rest of the report are the
	// caller's.
	full, free := make(chan *batch, nBatches), make(chan *batch, nBatches)
	for range nBatches {
		free <- newBatch()
	}
	pr := &producer{r: r, streams: streams, advance: advance, warn: warn, hosts: r.hosts}
	go pr.run(full, free)
	nextProgress := int64(0)
	for b := range full {
		for i := range b.n {
			f := &b.frames[i]
			if f.eval {
				r.packet(f)
			}
		}
		if opt.Progress != nil && b.read >= nextProgress {
			opt.Progress(b.read)
			nextProgress = b.read + 1<<20
		}
		free <- b
	}
	r.finish()
	if rep.Packets == 0 {
		warn(fmt.Errorf("no packet to a local address (%s) in %v", addrList(opt.Local), rep.Files))
	}
	rep.Complete = len(errs) == 0
	if len(errs) > maxWarnings {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("... and %d more", len(errs)-maxWarnings))
	}
	return rep, errors.Join(errs...)
}

func addrList(as []netip.Addr) string {
	var b bytes.Buffer
	for i, a := range as {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// runner holds a replay's working state.
type runner struct {
	eng  *engine.Engine
	rep  *Report
	opt  Options
	prog *engine.Program
	msg  sip.Message
	// hosts finds the policy's hostnames.
	hosts []foldFinder
	// bySlot caches report entries by hintSlot of their address.
	bySlot *[1 << 14]*Source
	// hints are shared with the producer.
	hints *stringHints
	// guard models sipwall guard (nil without Options.Guard).
	guard *guardModel
}

func (r *runner) local(a netip.Addr) bool {
	for _, l := range r.opt.Local {
		if l == a {
			return true
		}
	}
	return false
}

// source returns the report's entry for a; slot is a's hintSlot, where
// the entry is cached.
func (r *runner) source(a netip.Addr, slot uint32, t time.Time) *Source {
	if s := r.bySlot[slot]; s != nil && s.Addr == a {
		s.LastAt = t
		return s
	}
	s := r.rep.bySource[a]
	if s == nil {
		s = &Source{Addr: a, FirstAt: t, Lists: []ListEntry{}, UserAgents: []string{}, Methods: map[string]*MethodCount{}}
		r.rep.bySource[a] = s
	}
	r.bySlot[slot] = s
	s.LastAt = t
	return s
}

var listBits = map[string]uint8{ListAdmitted: 1, ListScanner: 2, ListTrapped: 4, ListRateLimited: 8, ListAnswered: 16}

func (r *runner) enter(s *Source, list string, t time.Time) {
	b := listBits[list]
	if s.lists&b != 0 {
		return
	}
	s.lists |= b
	s.Lists = append(s.Lists, ListEntry{List: list, At: t})
}

// answered notes a failure answer the host sent, and the ban it caused,
// in the report's entry of the address it went to.
func (r *runner) answered(p *packet.Packet, res *engine.Result, t time.Time) {
	failure := failureAnswer(p.Payload)
	if !failure && res.NAdds == 0 {
		return
	}
	s := r.source(p.Dst, hintSlot(p.Dst), t)
	if failure {
		s.FailureAnswers++
	}
	for i := 0; i < res.NAdds; i++ {
		if l := listOf(res.Adds[i].Set); l != "" && res.Adds[i].Addr == p.Dst {
			r.enter(s, l, t)
		}
	}
}

// failureAnswer reports whether payload starts with the status line of a
// failure answer that sip.answers counts.
func failureAnswer(payload []byte) bool {
	const prefix = "SIP/2.0 "
	if len(payload) < len(prefix)+4 || string(payload[:len(prefix)]) != prefix || payload[len(prefix)+3] != ' ' {
		return false
	}
	switch string(payload[len(prefix) : len(prefix)+3]) {
	case "401", "403", "407", "404", "484":
		return true
	}
	return false
}

func listOf(set string) string {
	switch set {
	case compile.SetAdmitted, "MYSIP":
		return ListAdmitted
	case compile.SetScanners, "BADSIP":
		return ListScanner
	case compile.SetTrapped, "RLM":
		return ListTrapped
	case compile.SetAnswered:
		return ListAnswered
	}
	return ""
}

func (r *runner) packet(f *frame) {
	rep := r.rep
	p := &f.pkt
	ts := f.ts
	if rep.First.IsZero() || ts.Before(rep.First) {
		rep.First = ts
	}
	if ts.After(rep.Last) {
		rep.Last = ts
	}
	if r.guard != nil && len(r.guard.pending) > 0 {
		r.guard.due(r, ts.UnixNano())
	}
	if !f.local {
		rep.Other++
		return
	}
	in := engine.Input{Pkt: p, Time: ts, Dir: f.dir, Strings: f.strs, StringsSet: f.strsSet}
	res := r.eng.Process(&in)
	if f.scanned && r.prog.HasStrings() && (res.Pkt == nil || res.Pkt == p) {
		// Tell the producer whether computing the matches ahead pays for
		// this source.
		if h := &r.hints[f.hint]; f.strsSet && !res.UsedStrings && !h.Load() {
			h.Store(true)
		} else if !f.strsSet && res.UsedStrings && h.Load() {
			h.Store(false)
		}
	}
	if r.opt.Trace != nil {
		r.opt.Trace(f.file, f.number, in.Dir, res.Verdict)
	}
	switch res.Verdict {
	case engine.Held:
		rep.Held++
		return
	case engine.Discarded:
		rep.Discarded++
		return
	}
	// A fragment that completed a datagram: the datagram is what the
	// ruleset saw.
	scanned := f.scanned
	if res.Pkt != nil && res.Pkt != p {
		p = res.Pkt
		scanned = false
	}
	if in.Dir == engine.Out {
		switch res.Verdict {
		case engine.Suppressed:
			rep.Suppress++
		case engine.Ignored:
			rep.Other++
		default:
			rep.Outgoing++
			r.answered(p, res, ts)
		}
		return
	}
	if res.Verdict == engine.Ignored {
		rep.Other++
		return
	}
	rep.Packets++
	slot := f.hint
	if p != &f.pkt {
		slot = hintSlot(p.Src)
	}
	s := r.source(p.Src, slot, ts)
	s.Packets++
	s.Bytes += uint64(res.Bytes)
	accepted := res.Verdict == engine.Accepted
	if accepted {
		rep.Accepted++
		s.Accepted++
	} else {
		rep.Dropped++
		s.Dropped++
		if res.Rule >= 0 && r.prog.Rules[res.Rule].RateLimit {
			r.enter(s, ListRateLimited, ts)
		}
		if s.FirstDrop == nil {
			d := &Drop{At: ts, Packet: f.number, File: f.file}
			if res.Rule >= 0 {
				d.RuleRef = ruleRef(r.prog.Rules[res.Rule])
			} else {
				d.RuleRef = RuleRef{Chain: res.PolicyChain, Text: "policy drop"}
			}
			s.FirstDrop = d
		}
	}
	for i := 0; i < res.NAdds; i++ {
		if l := listOf(res.Adds[i].Set); l != "" {
			r.enter(s, l, ts)
		}
	}
	if r.guard != nil && res.NFLog && res.NFLogGroup == compile.InspectGroup {
		// Guard reads the packet from nflog once the kernel has decided it.
		r.guard.inspect(r, s, p, ts)
	}
	// SIP requests of the source (the engine's result is not needed past
	// this point, so parsing may reuse nothing of it).
	var req sipRequest
	var ok bool
	host := int8(-1)
	if scanned {
		req, ok, host = f.req, f.reqOK, f.host
	} else if sipCandidate(p) {
		req, ok = scanRequest(p.Payload, &r.msg)
	}
	if !ok {
		return
	}
	s.SIPRequests++
	mc := s.method(req.method)
	mc.Seen++
	if accepted {
		s.SIPAccepted++
		mc.Accepted++
	}
	if len(req.userAgent) > 0 {
		r.userAgent(s, req.userAgent)
	}
	if req.register && !s.Knocked {
		if host < 0 {
			host = 0
			if r.carriesHostname(p.Payload) {
				host = 1
			}
		}
		s.Knocked = host == 1
	}
}

// method returns the source's counter of a method, the last one used when
// it is the same.
func (s *Source) method(m []byte) *MethodCount {
	if s.lastMC != nil && string(m) == string(s.lastMethod) {
		return s.lastMC
	}
	mc := s.Methods[string(m)]
	if mc == nil {
		mc = &MethodCount{}
		s.Methods[string(m)] = mc
	}
	s.lastMethod, s.lastMC = append(s.lastMethod[:0], m...), mc
	return mc
}

func isMethodStart(c byte) bool { return c >= 'A' && c <= 'Z' }

func (r *runner) userAgent(s *Source, ua []byte) {
	for _, u := range s.UserAgents {
		if u == string(ua) {
			return
		}
	}
	if len(s.UserAgents) < maxUserAgents {
		s.UserAgents = append(s.UserAgents, string(ua))
	}
}

func (r *runner) carriesHostname(payload []byte) bool {
	for i := range r.hosts {
		if r.hosts[i].in(payload) {
			return true
		}
	}
	return false
}

func ruleRef(ru engine.Rule) RuleRef {
	return RuleRef{Family: famName(ru.Family), Table: string(ru.Table), Chain: ru.Chain, Position: ru.Position, Text: ru.Text}
}

func famName(f ir.Family) string {
	switch f {
	case ir.IPv4:
		return "ipv4"
	case ir.IPv6:
		return "ipv6"
	}
	return "inet"
}

func (r *runner) finish() {
	rep := r.rep
	if r.guard != nil {
		// Guard's last decisions reach the kernel after the capture ends.
		r.guard.due(r, math.MaxInt64)
	}
	for i, ru := range r.prog.Rules {
		c := r.eng.Counters[i]
		rep.Rules = append(rep.Rules, RuleCount{RuleRef: ruleRef(ru), Packets: c.Packets, Bytes: c.Bytes})
	}
	for _, pc := range r.prog.Policies() {
		c := r.eng.PolicyCounter(pc.Chain)
		rep.Policies = append(rep.Policies, PolicyCount{Chain: pc.Chain, Policy: pc.Policy, Packets: c.Packets, Bytes: c.Bytes})
	}
	for _, s := range rep.bySource {
		rep.Sources = append(rep.Sources, s)
		if s.lists&(listBits[ListScanner]|listBits[ListTrapped]) != 0 {
			rep.Totals.SourcesBanned++
			rep.Totals.ScanAttemptsThwarted += uint64(s.Dropped)
		} else if s.lists&listBits[ListAnswered] != 0 {
			rep.Totals.SourcesBanned++
		}
		if s.lists&listBits[ListAdmitted] != 0 {
			rep.Totals.PhonesAdmitted++
		}
		if s.Knocked && s.Dropped > 0 && s.SIPAccepted < s.SIPRequests {
			rep.Totals.LockedOut = append(rep.Totals.LockedOut, s.Addr)
		}
	}
	sort.Slice(rep.Sources, func(i, j int) bool {
		a, b := rep.Sources[i], rep.Sources[j]
		if a.Packets != b.Packets {
			return a.Packets > b.Packets
		}
		return a.Addr.Less(b.Addr)
	})
	sort.Slice(rep.Totals.LockedOut, func(i, j int) bool { return rep.Totals.LockedOut[i].Less(rep.Totals.LockedOut[j]) })
	if rep.Totals.LockedOut == nil {
		rep.Totals.LockedOut = []netip.Addr{}
	}
	if rep.Warnings == nil {
		rep.Warnings = []string{}
	}
}

// SourceOf returns the report's entry for a, or nil.
func (rep *Report) SourceOf(a netip.Addr) *Source {
	for _, s := range rep.Sources {
		if s.Addr == a {
			return s
		}
	}
	return nil
}

// InList reports whether the source entered list.
func (s *Source) InList(list string) (time.Time, bool) {
	for _, l := range s.Lists {
		if l.List == list {
			return l.At, true
		}
	}
	return time.Time{}, false
}
