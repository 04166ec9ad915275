package events

import (
	"bytes"
	"time"
)

// securityLine: res_security_log
//
//	SecurityEvent="InvalidPassword",EventTV="…",Severity="Error",Service="SIP",EventVersion="2",
//	AccountID="…",SessionID="…",LocalAddress="IPV4/UDP/92.28.73.180/5060",
//	RemoteAddress="IPV4/UDP/141.255.164.106/5084",Challenge="…",ReceivedChallenge="…",ReceivedHash="…"
//
// Asterisk does not escape the values, and AccountID and SessionID (before
// RemoteAddress) are the caller's. The fields after RemoteAddress are
// Asterisk's own or digest values that chan_sip and pjsip cut at a double
// quote. So the address is the last RemoteAddress, and only if everything
// after it is a run of well-formed Key="value" fields with no second
// LocalAddress or RemoteAddress. Any earlier RemoteAddress would be followed
// by the later one as a key, so at most one candidate can pass.
func securityLine(m []byte) (Event, Result, string) {
	rest := m[len(aSecurityEvent):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		return Event{}, NoMatch, ""
	}
	k := securityKind(rest[:q])
	if k == KindNone {
		return Event{}, NoMatch, ""
	}
	ra := bytes.LastIndex(m, aRemoteAddress)
	if ra < 0 {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	v := m[ra+len(aRemoteAddress):]
	e := bytes.IndexByte(v, '"')
	if e < 0 {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	a, p, tr, ok := parseAddrSpec(v[:e])
	if !ok {
		return Event{Kind: k}, Rejected, WhyBadAddress
	}
	if !wellFormedTail(v[e+1:]) {
		return Event{Kind: k}, Rejected, WhyAmbiguous
	}
	return Event{Kind: k, Addr: a, Port: p, Transport: tr}, Matched, ""
}

// wellFormedTail reports whether b is a (possibly empty) run of
// ,Key="value" fields, values without double quotes, none of them an address
// key.
func wellFormedTail(b []byte) bool {
	for len(b) > 0 {
		if b[0] != ',' {
			return false
		}
		b = b[1:]
		i := 0
		for i < len(b) && (b[i] == '_' || 'a' <= b[i] && b[i] <= 'z' || 'A' <= b[i] && b[i] <= 'Z' || '0' <= b[i] && b[i] <= '9') {
			i++
		}
		if i == 0 || i+1 >= len(b) || b[i] != '=' || b[i+1] != '"' {
			return false
		}
		switch string(b[:i]) {
		case "RemoteAddress", "LocalAddress":
			return false
		}
		b = b[i+2:]
		e := bytes.IndexByte(b, '"')
		if e < 0 {
			return false
		}
		b = b[e+1:]
	}
	return true
}

// ClassifyAMI examines one AMI event block: "Key: value" lines separated by
// CRLF (or LF), as the manager sends after "Events: security", e.g.
//
//	Event: InvalidPassword
//	Privilege: security,all
//	EventTV: 2015-05-24T08:42:16.296+0300
//	Service: SIP
//	AccountID: 1001
//	SessionID: 0x7f8ecc0421f8
//	LocalAddress: IPV4/UDP/192.0.2.10/5060
//	RemoteAddress: IPV4/UDP/198.51.100.7/5084
//
// A value cannot contain a line break, so the RemoteAddress line is
// Asterisk's; a block with two is rejected. Time comes from EventTV (both
// the ISO form and the older "seconds-microseconds" form).
func ClassifyAMI(block []byte) (Event, Result, string) {
	var ev Event
	var remote []byte
	remotes := 0
	for len(block) > 0 {
		var line []byte
		if nl := bytes.IndexByte(block, '\n'); nl >= 0 {
			line, block = block[:nl], block[nl+1:]
		} else {
			line, block = block, nil
		}
		line = trimRight(line)
		c := bytes.IndexByte(line, ':')
		if c <= 0 || c+1 >= len(line) || line[c+1] != ' ' {
			continue
		}
		key, val := line[:c], line[c+2:]
		switch string(key) {
		case "Event":
			ev.Kind = securityKind(val)
		case "RemoteAddress":
			remote = val
			remotes++
		case "EventTV":
			ev.Time = parseEventTV(val)
		}
	}
	if ev.Kind == KindNone {
		return Event{}, NoMatch, ""
	}
	if remotes != 1 {
		if remotes == 0 {
			return Event{Kind: ev.Kind}, Rejected, WhyMalformed
		}
		return Event{Kind: ev.Kind}, Rejected, WhyAmbiguous
	}
	a, p, tr, ok := parseAddrSpec(remote)
	if !ok {
		return Event{Kind: ev.Kind}, Rejected, WhyBadAddress
	}
	ev.Addr, ev.Port, ev.Transport = a, p, tr
	return ev, Matched, ""
}

// parseEventTV parses "2015-05-24T08:42:16.296+0300" or "1368439853-500975".
func parseEventTV(v []byte) time.Time {
	if t, _, ok := parseStamp(v, time.UTC); ok {
		return t
	}
	d := bytes.IndexByte(v, '-')
	if d <= 0 {
		return time.Time{}
	}
	sec, ok1 := num(v[:d])
	usec, ok2 := num(v[d+1:])
	if !ok1 || !ok2 || usec > 999999 || d > 12 {
		return time.Time{}
	}
	return time.Unix(int64(sec), int64(usec)*1000)
}
