package events

import (
	"bytes"
	"time"
)

var (
	aRegistration   = []byte("Registration from '")
	aFailedFor      = []byte("' failed for '")
	aDashQ          = []byte("' - ")
	aRequest        = []byte("Request ")
	aFrom           = []byte("from '")
	aCallID         = []byte("' (callid: ")
	aParenDash      = []byte(") - ")
	aCallFrom       = []byte("Call from '")
	aCallParen      = []byte("Call (")
	aColonCall      = []byte(": Call (")
	aToExtension    = []byte(") to extension '")
	aExtNotFound    = []byte("' rejected because extension not found in context '")
	aHost           = []byte("Host ")
	aIAXFailedAuth  = []byte(" failed to authenticate as '")
	aIAXFailedMD5   = []byte(" failed MD5 authentication for '")
	aNoRegistration = []byte("No registration for peer '")
	aFromParen      = []byte("' (from ")
	aHacking        = []byte("hacking attempt detected '")
	aRejecting      = []byte("\"Rejecting unknown SIP connection from ")
	aAMIFailedAuth  = []byte(" failed to authenticate as '")
	aAMINoUser      = []byte(" tried to authenticate with nonexistent user '")
	aAMIFailedACL   = []byte(" failed to pass IP ACL as '")
	aSecurityEvent  = []byte("SecurityEvent=\"")
	aRemoteAddress  = []byte("\",RemoteAddress=\"")

	rNoEndpoint   = []byte("No matching endpoint found")
	rEndpointACL  = []byte("Not match Endpoint ACL")
	rContactACL   = []byte("Not match Endpoint Contact ACL")
	rFailedAuth   = []byte("Failed to authenticate")
	rErrorAuth    = []byte("Error to authenticate")
	kwFailedFor   = []byte("failed for '")
	kwFailedAuth  = []byte("failed to authenticate")
	kwExtNotFound = []byte("extension not found")
	kwNoEndpoint  = []byte("No matching endpoint")
	kwWrongPass   = []byte("Wrong password")
)

// ClassifyIn examines one log line (without its newline; a trailing CR or
// blanks are ignored) and returns the failure it reports. Timestamps without
// a zone are read in loc.
func ClassifyIn(line []byte, loc *time.Location) (Event, Result, string) {
	line = trimRight(line)
	if bytes.IndexByte(line, 0x1b) >= 0 {
		return classifyColoured(line, loc)
	}
	return classify(line, loc)
}

// classify is ClassifyIn on a trimmed line without colour escapes.
func classify(line []byte, loc *time.Location) (Event, Result, string) {
	switch f, off, p := detect(line); f {
	case formatFreeSWITCH:
		ev, r, why := freeSWITCH(line[off:], p, loc)
		if r == NoMatch {
			return unrecognized(line[off:])
		}
		if ev.Time.IsZero() && off > 0 {
			ev.Time, ev.NoYear, _ = parseLeadingStamp(line, loc)
		}
		return ev, r, why
	case formatKamailio:
		ev, r, why := kamailio(line[off:], p)
		if r == NoMatch {
			return unrecognized(line[off:])
		}
		if off > 0 {
			ev.Time, ev.NoYear, _ = parseLeadingStamp(line, loc)
		}
		return ev, r, why
	}
	ms, ts, noYear, ok := parsePrefix(line, loc)
	if !ok {
		return unrecognized(line)
	}
	ev, r, why := classifyMessage(line[ms:])
	if r == NoMatch {
		return unrecognized(line[ms:])
	}
	ev.Time, ev.NoYear = ts, noYear
	return ev, r, why
}

func trimRight(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case ' ', '\t', '\r', '\n':
			b = b[:len(b)-1]
			continue
		}
		break
	}
	return b
}

// unrecognized returns Rejected when a line that matched no known format
// still carries words of a security failure: a new log format must show up
// in the counters instead of silently ending all bans.
func unrecognized(b []byte) (Event, Result, string) {
	if i := bytes.Index(b, aSecurityEvent); i >= 0 {
		// Only failures; SuccessfulAuth and ChallengeSent are not.
		i += len(aSecurityEvent)
		if end := bytes.IndexByte(b[i:], '"'); end >= 0 {
			if k := securityKind(b[i : i+end]); k != KindNone {
				return Event{Kind: k}, Rejected, WhyUnknownFormat
			}
		}
		return Event{}, NoMatch, ""
	}
	for _, kw := range [...][]byte{kwFailedFor, kwFailedAuth, kwExtNotFound, kwNoEndpoint, kwWrongPass} {
		if bytes.Contains(b, kw) {
			return Event{}, Rejected, WhyUnknownFormat
		}
	}
	return Event{}, NoMatch, ""
}

// classifyMessage dispatches on the first bytes of the message.
func classifyMessage(m []byte) (Event, Result, string) {
	if len(m) == 0 {
		return Event{}, NoMatch, ""
	}
	switch m[0] {
	case 'S':
		if bytes.HasPrefix(m, aSecurityEvent) {
			return securityLine(m)
		}
	case 'R':
		if bytes.HasPrefix(m, aRegistration) {
			return registration(m)
		}
		if bytes.HasPrefix(m, aRequest) {
			return pjsipRequest(m)
		}
	case 'C':
		if bytes.HasPrefix(m, aCallFrom) || bytes.HasPrefix(m, aCallParen) {
			return extensionNotFound(m)
		}
	case ' ':
		// res_pjsip_session (older): " <endpoint>: Call (UDP:1.2.3.4:5060) to extension …"
		if c := bytes.Index(m[:min(len(m), 160)], aColonCall); c > 0 && bytes.IndexByte(m[1:c], ' ') < 0 {
			return extensionNotFound(m[c+2:])
		}
	case 'H':
		if bytes.HasPrefix(m, aHost) {
			return iaxHost(m)
		}
	case 'N':
		if bytes.HasPrefix(m, aNoRegistration) {
			return iaxNoRegistration(m)
		}
	case 'h':
		if bytes.HasPrefix(m, aHacking) {
			return hacking(m)
		}
	case '"':
		if bytes.HasPrefix(m, aRejecting) {
			return rejecting(m)
		}
	}
	if hexVal(m[0]) >= 0 || m[0] == ':' || m[0] == '[' {
		return manager(m)
	}
	return Event{}, NoMatch, ""
}

func hostPortEvent(k Kind, b []byte) (Event, Result, string) {
	a, p, ok := parseHostPort(b)
	if !ok {
		return Event{Kind: k}, Rejected, WhyBadAddress
	}
	return Event{Kind: k, Addr: a, Port: p}, Matched, ""
}

// registration: chan_sip
//
//	Registration from '<From>' failed for '<addr>[:port]' - <reason>
//
// Only the From (before the address) is caller-controlled; the reason is
// Asterisk's, so the address is found from the end of the line.
func registration(m []byte) (Event, Result, string) {
	rest := m[len(aRegistration):]
	d := bytes.LastIndex(rest, aDashQ)
	if d < 0 || d+len(aDashQ) == len(rest) || bytes.IndexByte(rest[d+len(aDashQ):], '\'') >= 0 {
		return Event{Kind: RegistrationFailed}, Rejected, WhyMalformed
	}
	before := rest[:d]
	f := bytes.LastIndex(before, aFailedFor)
	if f < 0 {
		return Event{Kind: RegistrationFailed}, Rejected, WhyMalformed
	}
	return hostPortEvent(RegistrationFailed, before[f+len(aFailedFor):])
}

// pjsipRequest: res_pjsip distributor
//
//	Request ['<method>' ]from '<From>' failed for '<addr>:<port>' (callid: <Call-ID>) - <reason>
//
// Both the From and the Call-ID are caller-controlled (pjsip takes the
// Call-ID up to the end of the header line), so "' failed for '" must occur
// exactly once.
func pjsipRequest(m []byte) (Event, Result, string) {
	rest := m[len(aRequest):]
	if len(rest) > 0 && rest[0] == '\'' {
		q := bytes.IndexByte(rest[1:], '\'')
		if q < 0 || q > 32 || q+2 >= len(rest) || rest[q+2] != ' ' {
			return Event{}, NoMatch, ""
		}
		rest = rest[q+3:]
	}
	if !bytes.HasPrefix(rest, aFrom) {
		return Event{}, NoMatch, ""
	}
	// The reason follows the last ") - "; reasons never contain one.
	r := bytes.LastIndex(m, aParenDash)
	if r < 0 {
		return Event{}, Rejected, WhyMalformed
	}
	var k Kind
	switch reason := m[r+len(aParenDash):]; {
	case bytes.HasPrefix(reason, rNoEndpoint):
		k = NoMatchingEndpoint
	case bytes.Equal(reason, rEndpointACL), bytes.Equal(reason, rContactACL):
		k = EndpointACLFailed
	case bytes.Equal(reason, rFailedAuth), bytes.Equal(reason, rErrorAuth):
		k = AuthFailed
	default:
		return Event{}, Rejected, WhyUnknownFormat
	}
	f := bytes.Index(m, aFailedFor)
	if f < 0 || f > r {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	if bytes.Index(m[f+1:], aFailedFor) >= 0 {
		return Event{Kind: k}, Rejected, WhyAmbiguous
	}
	a := m[f+len(aFailedFor):]
	q := bytes.IndexByte(a, '\'')
	if q < 0 || !bytes.HasPrefix(a[q:], aCallID) {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	return hostPortEvent(k, a[:q])
}

// extensionNotFound: chan_sip and res_pjsip_session
//
//	Call from '<name>' (<addr>:<port>) to extension '<exten>' rejected because extension not found in context '<ctx>'.
//	Call from '<endpoint>' (TCP:[1.2.3.4]:61470) to extension '<exten>' rejected because …
//	<endpoint>: Call (UDP:1.2.3.4:65049) to extension '<exten>' rejected because …
//
// The extension is caller-controlled and so can be chan_sip's name (the
// authentication user name): ") to extension '" must occur exactly once.
func extensionNotFound(m []byte) (Event, Result, string) {
	const k = ExtensionNotFound
	if !bytes.Contains(m, aExtNotFound) {
		return Event{}, NoMatch, ""
	}
	t := bytes.Index(m, aToExtension)
	if t < 0 {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	if bytes.Index(m[t+1:], aToExtension) >= 0 {
		return Event{Kind: k}, Rejected, WhyAmbiguous
	}
	o := bytes.LastIndexByte(m[:t], '(')
	if o < 0 {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	if !(o == len(aCallParen)-1 && bytes.HasPrefix(m, aCallParen)) && !(o >= 2 && m[o-1] == ' ' && m[o-2] == '\'') {
		return Event{Kind: k}, Rejected, WhyMalformed
	}
	a := m[o+1 : t]
	tr := ""
	if c := bytes.IndexByte(a, ':'); c >= 2 && c <= 3 {
		if name, ok := transportName(a[:c]); ok {
			tr, a = name, a[c+1:]
		}
	}
	ev, r, why := hostPortEvent(k, a)
	ev.Transport = tr
	return ev, r, why
}

// iaxHost: chan_iax2
//
//	Host <addr> failed to authenticate as '<user>'
//	Host <addr> failed MD5 authentication for '<user>' (…)
func iaxHost(m []byte) (Event, Result, string) {
	rest := m[len(aHost):]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return Event{}, NoMatch, ""
	}
	if !bytes.HasPrefix(rest[sp:], aIAXFailedAuth) && !bytes.HasPrefix(rest[sp:], aIAXFailedMD5) {
		return Event{}, NoMatch, ""
	}
	return hostPortEvent(IAX2AuthFailed, rest[:sp])
}

// iaxNoRegistration: chan_iax2
//
//	No registration for peer '<peer>' (from <addr>)
//
// The peer name is the caller's; the address closes the line.
func iaxNoRegistration(m []byte) (Event, Result, string) {
	if m[len(m)-1] != ')' {
		return Event{Kind: IAX2NoSuchPeer}, Rejected, WhyMalformed
	}
	f := bytes.LastIndex(m, aFromParen)
	if f < len(aNoRegistration)-1 {
		return Event{Kind: IAX2NoSuchPeer}, Rejected, WhyMalformed
	}
	return hostPortEvent(IAX2NoSuchPeer, m[f+len(aFromParen):len(m)-1])
}

// hacking: chan_sip
//
//	hacking attempt detected '<addr>'
func hacking(m []byte) (Event, Result, string) {
	rest := m[len(aHacking):]
	if len(rest) < 2 || rest[len(rest)-1] != '\'' {
		return Event{Kind: HackingAttempt}, Rejected, WhyMalformed
	}
	return hostPortEvent(HackingAttempt, rest[:len(rest)-1])
}

// rejecting: FreePBX dialplan Log()
//
//	"Rejecting unknown SIP connection from <addr>[:port]"
func rejecting(m []byte) (Event, Result, string) {
	rest := m[len(aRejecting):]
	if len(rest) < 2 || rest[len(rest)-1] != '"' {
		return Event{Kind: RejectedConnection}, Rejected, WhyMalformed
	}
	return hostPortEvent(RejectedConnection, rest[:len(rest)-1])
}

// manager: AMI login failures
//
//	<addr> failed to authenticate as '<user>'
//	<addr> tried to authenticate with nonexistent user '<user>'
//	<addr> failed to pass IP ACL as '<user>'
func manager(m []byte) (Event, Result, string) {
	sp := bytes.IndexByte(m[:min(len(m), 64)], ' ')
	if sp < 0 {
		return Event{}, NoMatch, ""
	}
	rest := m[sp:]
	if !bytes.HasPrefix(rest, aAMIFailedAuth) && !bytes.HasPrefix(rest, aAMINoUser) && !bytes.HasPrefix(rest, aAMIFailedACL) {
		return Event{}, NoMatch, ""
	}
	return hostPortEvent(AMILoginFailed, m[:sp])
}
