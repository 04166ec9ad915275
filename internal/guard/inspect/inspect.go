// Package inspect decides, from one SIP packet of a source the firewall does
// not know yet, whether that source is to be admitted (it showed the secret
// hostname, or an allowed user-agent), banned (it carries a scanner's
// signature) or left alone. It is the userspace stand-in for the string
// matches nftables does not have: the nftables ruleset hands such packets to
// sipwall guard through nflog, and guard puts the source in the admitted or
// scanners set.
//
// The inspector is pure (no I/O: sipwall guard feeds it from nflog, sipwall
// replay from a capture) and does not allocate per packet in steady state:
// it reads a decoded packet (package packet), parses SIP with package sip
// (header names case-insensitive, compact forms, folded lines), reassembles
// TCP segments per flow in buffers of a pool bounded at New (allocated 64 at
// a time as flows need them, then reused), and searches the
// message in a scratch buffer it owns. It matches where the article's
// iptables string match would, anywhere in the SIP message, but only in a
// payload that is SIP (a request or status line first) and after undoing
// line folding, so a scanner that writes "user-agent:" in lower case, folds
// its headers or splits its request over TCP segments is seen like one that
// does not. A TLS ClientHello on a SIP port is searched as it is: the server
// name (SNI) is plain text in it.
//
// An Inspector is not safe for concurrent use.
package inspect

import (
	"bytes"
	"net/netip"

	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/sip"
)

// Verdict is what the inspector decided about a packet's source.
type Verdict uint8

// Verdicts.
const (
	Pass  Verdict = iota // nothing decided: not SIP, no knock yet, or a message still incomplete
	Admit                // the source knocked: add it to the admitted set
	Ban                  // the source is a scanner: add it to the scanners set
)

func (v Verdict) String() string {
	switch v {
	case Admit:
		return "admit"
	case Ban:
		return "ban"
	}
	return "pass"
}

// Reason says why a verdict was reached (or why a packet was passed over).
type Reason uint8

// Reasons.
const (
	ReasonNone       Reason = iota
	ReasonHostname          // the message carries a secret hostname
	ReasonUserAgent         // the User-Agent is on the allow-list
	ReasonSignature         // the message carries a scanner signature
	ReasonTLSName           // a TLS ClientHello names a secret hostname (SNI)
	ReasonNotSIP            // the payload is neither SIP nor TLS
	ReasonIncomplete        // a TCP message is not complete yet
	ReasonNoKnock           // SIP without a knock or a signature
	ReasonNoPayload         // no transport payload (TCP handshake, FIN…)
	ReasonNotIP             // not a TCP or UDP packet
	numReasons
)

var reasonNames = [numReasons]string{"none", "hostname", "user-agent", "signature", "tls-sni", "not-sip", "incomplete", "no-knock", "no-payload", "not-tcp-udp"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Result is the inspector's answer for one packet.
type Result struct {
	Verdict Verdict
	Reason  Reason
	Src     netip.Addr // the packet's source address (unmapped)
	// Match is the configured string that decided (a hostname,
	// user-agent or signature), "" for Pass.
	Match string
}

// Config is what the inspector looks for.
type Config struct {
	// Mode is the policy's sip.mode: hostname, user-agent, open or
	// scanners-only. Only hostname and user-agent admit.
	Mode       string
	Hostnames  []string           // hostname mode: the secret hostnames (case-insensitive)
	UserAgents []string           // user-agent mode: allowed user-agents (case-insensitive, in the User-Agent header)
	Signatures []policy.Signature // scanner signatures, anywhere in the message

	// MaxFlows bounds the TCP flows reassembled at once (default 4096);
	// the least recently seen flow is dropped for a new one.
	MaxFlows int
	// FlowBuffer is the reassembly buffer per TCP flow (default
	// sip.DefaultStreamBuffer): a message whose headers do not fit is
	// dropped unseen.
	FlowBuffer int
}

// FromPolicy returns the inspector configuration of a policy.
func FromPolicy(p *policy.Policy) Config {
	return Config{
		Mode:       p.SIP.Mode,
		Hostnames:  p.SIP.Hostnames,
		UserAgents: p.SIP.UserAgents,
		Signatures: p.SIP.Scanners.Signatures,
	}
}

// Stats counts what the inspector saw.
type Stats struct {
	Packets     uint64 // packets inspected
	Messages    uint64 // complete SIP messages examined
	Admitted    uint64 // Admit verdicts
	Banned      uint64 // Ban verdicts
	NotSIP      uint64 // payloads that were neither SIP nor TLS
	Flows       int    // TCP flows being reassembled
	Evicted     uint64 // flows dropped to make room for new ones
	StreamReset uint64 // reassembly restarts (gap, overflow, unframeable data)
}

// needle is one string searched for.
type needle struct {
	text  string // as configured, reported in Result.Match
	find  []byte // lower-cased when icase
	icase bool
}

type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
}

type flow struct {
	s    *sip.Stream
	last uint64 // Stats.Packets when last seen
}

// Inspector holds the needles, the TCP flows and the scratch buffers.
type Inspector struct {
	mode       string
	admitHost  []needle
	admitUA    []needle
	signatures []needle
	anyFold    bool // some needle ignores case

	maxFlows int
	pool     *sip.StreamPool
	flows    map[flowKey]*flow
	free     []*flow

	msg         sip.Message
	lower       []byte // lower-cased copy of the message being searched
	unfold      []byte // unfolded copy of a folded message
	lowerUnfold []byte // lower-cased copy of unfold
	uaBuf       []byte // unfolded User-Agent
	lowerUA     []byte // lower-cased User-Agent
	stats       Stats
}

// maxScratch bounds the bytes of one message that are searched: an IP
// datagram holds at most 64 KiB.
const maxScratch = 64 << 10

// New returns an inspector for cfg; its memory is allocated here, once,
// but for the flows' buffers (sip.StreamPool), allocated as flows need them.
func New(cfg Config) *Inspector {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 4096
	}
	if cfg.FlowBuffer <= 0 {
		cfg.FlowBuffer = sip.DefaultStreamBuffer
	}
	in := &Inspector{
		mode:        cfg.Mode,
		maxFlows:    cfg.MaxFlows,
		pool:        sip.NewStreamPool(cfg.MaxFlows, cfg.FlowBuffer),
		flows:       make(map[flowKey]*flow, cfg.MaxFlows),
		free:        make([]*flow, 0, cfg.MaxFlows),
		lower:       make([]byte, 0, maxScratch),
		unfold:      make([]byte, 0, maxScratch),
		lowerUnfold: make([]byte, 0, maxScratch),
		uaBuf:       make([]byte, 0, maxScratch),
		lowerUA:     make([]byte, 0, maxScratch),
	}
	for i := 0; i < cfg.MaxFlows; i++ {
		in.free = append(in.free, &flow{})
	}
	mk := func(s string, icase bool) needle {
		n := needle{text: s, find: []byte(s), icase: icase}
		if icase {
			n.find = bytes.ToLower(n.find)
			in.anyFold = true
		}
		return n
	}
	switch cfg.Mode {
	case policy.ModeHostname:
		for _, h := range cfg.Hostnames {
			if h != "" {
				in.admitHost = append(in.admitHost, mk(h, true))
			}
		}
	case policy.ModeUserAgent:
		for _, ua := range cfg.UserAgents {
			if ua != "" {
				in.admitUA = append(in.admitUA, mk(ua, true))
			}
		}
	}
	for _, s := range cfg.Signatures {
		if s.Match != "" {
			in.signatures = append(in.signatures, mk(s.Match, s.IgnoreCase))
		}
	}
	return in
}

// Stats returns the counters.
func (in *Inspector) Stats() Stats {
	s := in.stats
	s.Flows = len(in.flows)
	return s
}

// Inspect examines one decoded packet. The packet's byte slices are not
// kept beyond the call (TCP payload is copied into the flow's buffer).
func (in *Inspector) Inspect(p *packet.Packet) Result {
	in.stats.Packets++
	r := Result{Src: p.Src.Unmap()}
	switch {
	case p.Layers.Has(packet.LayerUDP):
		if len(p.Payload) == 0 {
			r.Reason = ReasonNoPayload
			return r
		}
		in.datagram(p.Payload, &r)
	case p.Layers.Has(packet.LayerTCP):
		in.segment(p, &r)
	default:
		r.Reason = ReasonNotIP
	}
	switch r.Verdict {
	case Admit:
		in.stats.Admitted++
	case Ban:
		in.stats.Banned++
	}
	if r.Reason == ReasonNotSIP {
		in.stats.NotSIP++
	}
	return r
}

// datagram inspects a UDP payload: one SIP message. A message cut short
// (headers not terminated, body shorter than Content-Length) is searched as
// far as it goes, as the kernel's string match would.
func (in *Inspector) datagram(b []byte, r *Result) {
	switch err := sip.Parse(b, &in.msg); err {
	case nil, sip.ErrShortBody, sip.ErrIncomplete, sip.ErrContentLength:
	default:
		if in.tls(b, r) {
			return
		}
		r.Reason = ReasonNotSIP
		return
	}
	in.stats.Messages++
	in.judge(&in.msg, b, r)
}

// segment feeds a TCP segment to its flow's reassembly and judges every
// message it completes.
func (in *Inspector) segment(p *packet.Packet, r *Result) {
	k := flowKey{src: p.Src, dst: p.Dst, sport: p.SrcPort, dport: p.DstPort}
	f := in.flows[k]
	end := p.TCPFlags&(packet.TCPFin|packet.TCPRst) != 0
	if len(p.Payload) == 0 {
		r.Reason = ReasonNoPayload
		if end && f != nil {
			in.release(k, f)
		}
		return
	}
	if f == nil {
		// A TLS ClientHello is judged on its first segment, unbuffered.
		if isTLSHandshake(p.Payload) {
			if !in.tls(p.Payload, r) {
				r.Reason = ReasonNoKnock
			}
			return
		}
		f = in.acquire(k)
	}
	f.last = in.stats.Packets
	if err := f.s.Write(p.Seq, p.Payload); err != nil {
		// A gap or an overflow: the stream starts over (sip.Stream).
		in.stats.StreamReset++
	}
	r.Reason = ReasonIncomplete
	for {
		ok, err := f.s.Next(&in.msg)
		if err != nil && err != sip.ErrTooLarge {
			in.stats.StreamReset++
			r.Reason = ReasonNotSIP
			break
		}
		if !ok {
			break
		}
		in.stats.Messages++
		in.judge(&in.msg, messageBytes(&in.msg), r)
		if r.Verdict != Pass {
			// The source is decided: its flow is of no more interest.
			in.release(k, f)
			return
		}
	}
	if end {
		in.release(k, f)
	}
}

// messageBytes returns the whole message Stream.Next reported: its fields
// point into the flow's buffer, which runs on from the start line to the
// end of the body. nil when the start line cannot be found.
func messageBytes(m *sip.Message) []byte {
	start := m.Version
	if m.Request {
		start = m.MethodName
	}
	if len(start) == 0 || cap(start) < m.Len {
		return nil
	}
	return start[:m.Len]
}

func (in *Inspector) acquire(k flowKey) *flow {
	s := in.pool.Get()
	if s == nil {
		in.evictOldest()
		s = in.pool.Get()
	}
	f := in.free[len(in.free)-1]
	in.free = in.free[:len(in.free)-1]
	f.s = s
	in.flows[k] = f
	return f
}

func (in *Inspector) release(k flowKey, f *flow) {
	delete(in.flows, k)
	in.pool.Put(f.s)
	f.s = nil
	in.free = append(in.free, f)
}

// evictOldest drops the least recently seen flow. It walks every flow,
// but only when all maxFlows buffers are in use.
func (in *Inspector) evictOldest() {
	var ok bool
	var oldK flowKey
	var oldF *flow
	for k, f := range in.flows {
		if !ok || f.last < oldF.last {
			oldK, oldF, ok = k, f, true
		}
	}
	if ok {
		in.release(oldK, oldF)
		in.stats.Evicted++
	}
}

// judge searches one SIP message. whole is the message's bytes (nil when
// unknown: then its fields are searched one by one).
func (in *Inspector) judge(m *sip.Message, whole []byte, r *Result) {
	hay := whole
	if hay == nil {
		hay = in.fields(m)
	}
	if len(hay) > maxScratch {
		hay = hay[:maxScratch]
	}
	var low []byte
	if in.anyFold {
		low = lowerInto(in.lower, hay)
	}
	if in.search(hay, low, in.signatures, r, Ban, ReasonSignature) {
		return
	}
	// Folded lines: search once more with every fold made a single space,
	// so that a string split by folding is found as well.
	var folded, foldedLow []byte
	if m.Folded && whole != nil {
		folded = in.unfolded(m, hay)
		if in.anyFold {
			foldedLow = lowerInto(in.lowerUnfold, folded)
		}
		if in.search(folded, foldedLow, in.signatures, r, Ban, ReasonSignature) {
			return
		}
	}
	switch {
	case len(in.admitHost) > 0:
		if in.search(hay, low, in.admitHost, r, Admit, ReasonHostname) {
			return
		}
		if folded != nil && in.search(folded, foldedLow, in.admitHost, r, Admit, ReasonHostname) {
			return
		}
	case len(in.admitUA) > 0:
		if ua := m.UserAgent(); len(ua) > 0 {
			if len(ua) > maxScratch/2 {
				ua = ua[:maxScratch/2]
			}
			if m.Folded {
				ua = sip.AppendUnfolded(in.uaBuf[:0], ua)
			}
			if in.search(ua, lowerInto(in.lowerUA, ua), in.admitUA, r, Admit, ReasonUserAgent) {
				return
			}
		}
	}
	r.Reason = ReasonNoKnock
}

// fields concatenates the parts of a message whose bytes could not be
// recovered whole: start line, recorded headers, body.
func (in *Inspector) fields(m *sip.Message) []byte {
	b := in.unfold[:0]
	add := func(v []byte) {
		if len(b)+len(v)+1 <= cap(b) {
			b = append(b, v...)
			b = append(b, '\n')
		}
	}
	add(m.MethodName)
	add(m.RequestURI)
	for _, h := range m.Headers {
		add(h)
	}
	add(m.Body)
	return b
}

// unfolded returns the message's headers with every fold replaced by a
// space, followed by the body, in the unfold scratch buffer.
func (in *Inspector) unfolded(m *sip.Message, msg []byte) []byte {
	n := len(msg)
	if m.HeaderLen > 0 && m.HeaderLen <= n {
		n = m.HeaderLen
	}
	b := sip.AppendUnfolded(in.unfold[:0], msg[:n])
	if len(b)+len(msg)-n <= cap(b) {
		b = append(b, msg[n:]...)
	}
	return b
}

// search looks for each needle in hay (case-insensitive needles in low,
// hay lower-cased); on a hit it fills r and reports true.
func (in *Inspector) search(hay, low []byte, ns []needle, r *Result, v Verdict, why Reason) bool {
	for i := range ns {
		n := &ns[i]
		h := hay
		if n.icase {
			h = low
		}
		if bytes.Contains(h, n.find) {
			r.Verdict, r.Reason, r.Match = v, why, n.text
			return true
		}
	}
	return false
}

// lowerInto copies b into dst's backing array with ASCII letters
// lower-cased, up to dst's capacity.
func lowerInto(dst, b []byte) []byte {
	if len(b) > cap(dst) {
		b = b[:cap(dst)]
	}
	dst = dst[:len(b)]
	for i, c := range b {
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// isTLSHandshake reports whether b starts like a TLS handshake record.
func isTLSHandshake(b []byte) bool {
	return len(b) >= 6 && b[0] == 0x16 && b[1] == 0x03 && b[5] == 0x01
}

// tls searches a TLS ClientHello for the secret hostnames (its SNI is
// plain text). Signatures and user-agents cannot be seen inside TLS.
func (in *Inspector) tls(b []byte, r *Result) bool {
	if !isTLSHandshake(b) || len(in.admitHost) == 0 {
		return false
	}
	if len(b) > maxScratch {
		b = b[:maxScratch]
	}
	return in.search(b, lowerInto(in.lower, b), in.admitHost, r, Admit, ReasonTLSName)
}
