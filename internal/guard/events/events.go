// Package events recognizes Asterisk security failures in log lines and in
// Asterisk Manager Interface (AMI) security events, and extracts the remote
// address that Asterisk itself wrote. It also reads FreeSWITCH's and
// Kamailio's failure lines and Asterisk's coloured console lines (pbx.go,
// colour.go); the format is decided per line from its start.
//
// Matching is hand-written scanning on fixed anchors (no regular
// expressions), runs in time linear in the line length and does not
// allocate. The address is only ever taken from the place Asterisk fills in
// (RemoteAddress="…", "failed for '…'", "(from …)", …), never from text the
// caller controls (From header, user name, Call-ID, extension). Where a
// message carries caller-controlled text on both sides of the address and the
// anchor around the address occurs more than once, the line is ambiguous: it
// is reported as [Rejected] and attributed to nobody.
package events

import (
	"net/netip"
	"time"
)

// Kind is the kind of security failure an event reports. Its String form is
// stable and is used in reports and JSON.
type Kind uint8

// Event kinds. The first seven are Asterisk's own SecurityEvent names; the
// others name the plain log messages of chan_sip, res_pjsip, chan_iax2 and
// the manager.
const (
	KindNone                Kind = iota
	InvalidAccountID             // SecurityEvent InvalidAccountID
	ChallengeResponseFailed      // SecurityEvent ChallengeResponseFailed
	InvalidPassword              // SecurityEvent InvalidPassword
	FailedACL                    // SecurityEvent FailedACL
	RequestNotAllowed            // SecurityEvent RequestNotAllowed
	AuthMethodNotAllowed         // SecurityEvent AuthMethodNotAllowed
	UnexpectedAddress            // SecurityEvent UnexpectedAddress
	NoMatchingEndpoint           // res_pjsip: "No matching endpoint found"
	EndpointACLFailed            // res_pjsip: "Not match Endpoint (Contact) ACL"
	AuthFailed                   // res_pjsip: "Failed/Error to authenticate"
	RegistrationFailed           // chan_sip: "Registration from … failed for …"
	ExtensionNotFound            // call rejected because the extension was not found
	AMILoginFailed               // manager: failed to authenticate / nonexistent user / IP ACL
	IAX2AuthFailed               // chan_iax2: failed (MD5) authentication
	IAX2NoSuchPeer               // chan_iax2: "No registration for peer"
	HackingAttempt               // chan_sip: "hacking attempt detected"
	RejectedConnection           // FreePBX dialplan: "Rejecting unknown SIP connection from"
	FreeSWITCHAuthFailure        // FreeSWITCH sofia: "SIP auth failure (REGISTER|INVITE) on sofia profile"
	FreeSWITCHUserNotFound       // FreeSWITCH sofia: "Can't find user [user@domain] from"
	KamailioAuthFailed           // Kamailio: the auth route's xlog line (docs/guard.md)
	KamailioPikeBlocked          // Kamailio pike: the request rate limit blocked the address
	numKinds
)

var kindNames = [numKinds]string{
	KindNone:                "",
	InvalidAccountID:        "InvalidAccountID",
	ChallengeResponseFailed: "ChallengeResponseFailed",
	InvalidPassword:         "InvalidPassword",
	FailedACL:               "FailedACL",
	RequestNotAllowed:       "RequestNotAllowed",
	AuthMethodNotAllowed:    "AuthMethodNotAllowed",
	UnexpectedAddress:       "UnexpectedAddress",
	NoMatchingEndpoint:      "NoMatchingEndpoint",
	EndpointACLFailed:       "EndpointACLFailed",
	AuthFailed:              "AuthFailed",
	RegistrationFailed:      "RegistrationFailed",
	ExtensionNotFound:       "ExtensionNotFound",
	AMILoginFailed:          "AMILoginFailed",
	IAX2AuthFailed:          "IAX2AuthFailed",
	IAX2NoSuchPeer:          "IAX2NoSuchPeer",
	HackingAttempt:          "HackingAttempt",
	RejectedConnection:      "RejectedConnection",
	FreeSWITCHAuthFailure:   "FreeSWITCHAuthFailure",
	FreeSWITCHUserNotFound:  "FreeSWITCHUserNotFound",
	KamailioAuthFailed:      "KamailioAuthFailed",
	KamailioPikeBlocked:     "KamailioPikeBlocked",
}

// String returns the stable name of the kind ("" for KindNone).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "Kind(?)"
}

// Kinds returns every event kind Match can report, in declaration order.
func Kinds() []Kind {
	ks := make([]Kind, 0, numKinds-1)
	for k := KindNone + 1; k < numKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// securityKind maps an Asterisk SecurityEvent name to a failure kind.
// Events that are not failures (SuccessfulAuth, ChallengeSent, …) map to
// KindNone.
func securityKind(name []byte) Kind {
	switch string(name) { // no allocation: the compiler switches on the bytes
	case "InvalidAccountID":
		return InvalidAccountID
	case "ChallengeResponseFailed":
		return ChallengeResponseFailed
	case "InvalidPassword":
		return InvalidPassword
	case "FailedACL":
		return FailedACL
	case "RequestNotAllowed":
		return RequestNotAllowed
	case "AuthMethodNotAllowed":
		return AuthMethodNotAllowed
	case "UnexpectedAddress":
		return UnexpectedAddress
	}
	return KindNone
}

// Transport names as Asterisk prints them. The empty string means the
// message does not say.
const (
	UDP = "UDP"
	TCP = "TCP"
	TLS = "TLS"
	WS  = "WS"
	WSS = "WSS"
)

// transportName returns the canonical (static) name of a transport token,
// case-insensitively, or "" and false.
func transportName(b []byte) (string, bool) {
	var up [3]byte
	if len(b) < 2 || len(b) > 3 {
		return "", false
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	switch string(up[:len(b)]) {
	case UDP:
		return UDP, true
	case TCP:
		return TCP, true
	case TLS:
		return TLS, true
	case WS:
		return WS, true
	case WSS:
		return WSS, true
	}
	return "", false
}

// Event is one recognized security failure.
type Event struct {
	Kind      Kind
	Addr      netip.Addr // the remote address, IPv4-mapped IPv6 unmapped, no zone
	Port      uint16     // the remote port, 0 when the message does not give it
	Transport string     // UDP, TCP, TLS, WS, WSS or "" when the message does not say
	// Time is the log line's timestamp in the location passed to
	// ClassifyIn (time.Local for Match), or the zero Time when the line has
	// none. When the stamp has no year (Asterisk's "Jan _2 15:04:05" and
	// syslog), Time has year 0 and NoYear is set: the caller knows which year
	// the file is from.
	Time   time.Time
	NoYear bool
}

// Result says what Classify made of a line.
type Result uint8

// Results of Classify.
const (
	NoMatch  Result = iota // not a security failure
	Matched                // a failure, attributed to Event.Addr
	Rejected               // looks like a failure but cannot be attributed safely
)

func (r Result) String() string {
	switch r {
	case Matched:
		return "matched"
	case Rejected:
		return "rejected"
	}
	return "no match"
}

// Reasons a line is Rejected. They are constants so Classify never allocates.
const (
	WhyAmbiguous     = "ambiguous: the anchor around the address also occurs in caller-controlled text"
	WhyBadAddress    = "the address field is not an IP address"
	WhyMalformed     = "malformed message"
	WhyUnknownFormat = "looks like a security failure but the format is not recognized"
)

// Match reports the security failure in a log line, if any, with its
// timestamp read in time.Local. Lines that are Rejected do not match.
func Match(line []byte) (Event, bool) {
	ev, r, _ := ClassifyIn(line, time.Local)
	return ev, r == Matched
}

// Classify is ClassifyIn with time.Local.
func Classify(line []byte) (Event, Result, string) {
	return ClassifyIn(line, time.Local)
}
