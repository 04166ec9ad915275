// Package success recognizes Asterisk's reports that a source registered
// or authenticated successfully: the security log's and the manager's
// SuccessfulAuth events, and the manager's ContactStatus (res_pjsip) and
// PeerStatus (chan_sip) events. sipwall guard admits such a source for
// SIP, for the registration's lifetime plus a margin.
//
// The address is taken only from a field Asterisk fills after it
// authenticated the request: SuccessfulAuth's RemoteAddress (the packet's
// source), chan_sip's PeerStatus Address (the address the peer registered
// from) and the host of res_pjsip's contact URI (the source address and
// port when the endpoint has rewrite_contact=yes, FreePBX's default; else
// the contact the authenticated phone wrote). Only IP literals are taken:
// a contact naming a host name, a loopback, multicast or unspecified
// address admits nobody.
package success

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"
)

// Kind is the event that reported the success.
type Kind uint8

// Success kinds.
const (
	KindNone       Kind = iota
	SuccessfulAuth      // security event: a request authenticated with a password
	ContactStatus       // res_pjsip: a registered contact Created or Reachable
	PeerStatus          // chan_sip: a peer Registered
)

func (k Kind) String() string {
	switch k {
	case SuccessfulAuth:
		return "SuccessfulAuth"
	case ContactStatus:
		return "ContactStatus"
	case PeerStatus:
		return "PeerStatus"
	}
	return ""
}

// Success is one recognized success.
type Success struct {
	Kind    Kind
	Addr    netip.Addr // unmapped, no zone
	Port    uint16     // 0 when not given
	Account string     // AccountID, AOR or peer name, for the log only
	// Expires is when the registration ends (ContactStatus's RegExpire),
	// the zero Time when the event does not say.
	Expires time.Time
}

var (
	aSecurityEvent = []byte(`SecurityEvent="SuccessfulAuth"`)
	aRemoteAddress = []byte(`,RemoteAddress="`)
	aUsingPassword = []byte(`UsingPassword="`)
	aAccountID     = []byte(`AccountID="`)
)

// Line recognizes a SuccessfulAuth line of Asterisk's security log
// (res_security_log), as written to the security channel, messages or
// the journal:
//
//	[Mar  1 10:00:00] SECURITY[1234] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="2024-03-01T10:00:00.000+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1001",SessionID="…",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060",UsingPassword="1"
//
// AccountID and SessionID, before RemoteAddress, are the caller's text, so
// the address is the last RemoteAddress and only if everything after it
// is well-formed Key="value" fields with no other address. A success
// without a password (UsingPassword="0": a chan_sip peer matched by its
// address, no secret) proves nothing about the source and is not reported:
// trunks known by address belong in the policy's trusted lists.
func Line(line []byte) (Success, bool) {
	i := bytes.Index(line, aSecurityEvent)
	if i < 0 {
		return Success{}, false
	}
	m := line[i:]
	ra := bytes.LastIndex(m, aRemoteAddress)
	if ra < 0 {
		return Success{}, false
	}
	v := m[ra+len(aRemoteAddress):]
	e := bytes.IndexByte(v, '"')
	if e < 0 {
		return Success{}, false
	}
	a, p, ok := addrSpec(v[:e])
	if !ok || !wellFormedTail(v[e+1:]) {
		return Success{}, false
	}
	if up := bytes.Index(v[e+1:], aUsingPassword); up >= 0 {
		if w := v[e+1+up+len(aUsingPassword):]; len(w) > 0 && w[0] == '0' {
			return Success{}, false
		}
	}
	s := Success{Kind: SuccessfulAuth, Addr: a, Port: p}
	if ac := bytes.Index(m[:ra], aAccountID); ac >= 0 {
		acc := m[ac+len(aAccountID) : ra]
		if q := bytes.IndexByte(acc, '"'); q >= 0 {
			s.Account = string(acc[:q])
		}
	}
	return s, true
}

// wellFormedTail reports whether b is a (possibly empty) run of
// ,Key="value" fields, values without double quotes, none of them an
// address key.
func wellFormedTail(b []byte) bool {
	for len(b) > 0 {
		if b[0] != ',' {
			return len(bytes.TrimSpace(b)) == 0
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

// addrSpec parses Asterisk's "IPV4/UDP/198.51.100.7/5060" (or IPV6/…).
func addrSpec(v []byte) (netip.Addr, uint16, bool) {
	f := bytes.Split(v, []byte{'/'})
	if len(f) != 4 {
		return netip.Addr{}, 0, false
	}
	a, ok := hostAddr(f[2])
	if !ok {
		return netip.Addr{}, 0, false
	}
	p, err := strconv.ParseUint(string(f[3]), 10, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return a, uint16(p), true
}

// hostAddr parses an IP literal (brackets allowed) that can be admitted.
func hostAddr(h []byte) (netip.Addr, bool) {
	h = bytes.TrimSuffix(bytes.TrimPrefix(h, []byte{'['}), []byte{']'})
	a, err := netip.ParseAddr(string(h))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}

// hostPort parses "198.51.100.7:5060", "198.51.100.7", "[2001:db8::1]:5060"
// or a bare IPv6 address.
func hostPort(v []byte) (netip.Addr, uint16, bool) {
	if ap, err := netip.ParseAddrPort(string(v)); err == nil {
		a, ok := hostAddr([]byte(ap.Addr().String()))
		return a, ap.Port(), ok
	}
	a, ok := hostAddr(v)
	return a, 0, ok
}

// uriHost returns the host (and port) of a SIP URI such as
// "sip:1001@198.51.100.7:5060;transport=udp" when it is an IP literal.
func uriHost(u []byte) (netip.Addr, uint16, bool) {
	u = bytes.TrimPrefix(bytes.TrimSuffix(u, []byte{'>'}), []byte{'<'})
	c := bytes.IndexByte(u, ':')
	if c < 0 {
		return netip.Addr{}, 0, false
	}
	switch string(bytes.ToLower(u[:c])) {
	case "sip", "sips":
	default:
		return netip.Addr{}, 0, false
	}
	u = u[c+1:]
	if at := bytes.LastIndexByte(u, '@'); at >= 0 {
		u = u[at+1:]
	}
	if e := bytes.IndexAny(u, ";?>"); e >= 0 {
		u = u[:e]
	}
	return hostPort(u)
}

// AMI recognizes a success in one manager event block ("Key: value"
// lines), as guard receives with "Events: security,system":
//
//	Event: SuccessfulAuth          (RemoteAddress: IPV4/UDP/198.51.100.7/5060, UsingPassword: 1)
//	Event: ContactStatus           (ContactStatus: Created or Reachable, URI: sip:1001@198.51.100.7:5060, RegExpire: 1709287200)
//	Event: PeerStatus              (PeerStatus: Registered, Address: 198.51.100.7:5060)
//
// now turns a relative expiry into a time. A value cannot contain a line
// break, so each line is Asterisk's; a block with a field twice is
// ignored.
func AMI(block []byte, now time.Time) (Success, bool) {
	var event, remote, using, status, uri, peerStatus, address, port, account, regExpire, expires []byte
	seen := map[string]int{}
	for len(block) > 0 {
		var line []byte
		if nl := bytes.IndexByte(block, '\n'); nl >= 0 {
			line, block = block[:nl], block[nl+1:]
		} else {
			line, block = block, nil
		}
		line = bytes.TrimRight(line, "\r")
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		key, val := string(line[:c]), bytes.TrimSpace(line[c+1:])
		switch key {
		case "Event":
			event = val
		case "RemoteAddress":
			remote = val
		case "UsingPassword":
			using = val
		case "ContactStatus":
			status = val
		case "URI":
			uri = val
		case "PeerStatus":
			peerStatus = val
		case "Address":
			address = val
		case "Port":
			port = val
		case "AccountID", "AOR", "Peer":
			account = val
		case "RegExpire":
			regExpire = val
		case "Expires":
			expires = val
		default:
			continue
		}
		seen[key]++
		if seen[key] > 1 {
			return Success{}, false
		}
	}
	var s Success
	var ok bool
	switch string(event) {
	case "SuccessfulAuth":
		if bytes.Equal(using, []byte("0")) {
			return Success{}, false
		}
		s.Kind = SuccessfulAuth
		s.Addr, s.Port, ok = addrSpec(remote)
	case "ContactStatus":
		switch string(status) {
		case "Created", "Reachable", "Updated":
		default:
			return Success{}, false
		}
		s.Kind = ContactStatus
		s.Addr, s.Port, ok = uriHost(uri)
	case "PeerStatus":
		if string(peerStatus) != "Registered" {
			return Success{}, false
		}
		s.Kind = PeerStatus
		s.Addr, s.Port, ok = hostPort(address)
		if ok && s.Port == 0 && port != nil {
			if p, err := strconv.ParseUint(string(port), 10, 16); err == nil {
				s.Port = uint16(p)
			}
		}
	default:
		return Success{}, false
	}
	if !ok {
		return Success{}, false
	}
	s.Account = string(account)
	// RegExpire is absolute (seconds since 1970); Expires is relative.
	if n, err := strconv.ParseInt(string(regExpire), 10, 64); err == nil && n > 0 {
		s.Expires = time.Unix(n, 0)
	} else if n, err := strconv.ParseInt(string(expires), 10, 64); err == nil && n > 0 {
		s.Expires = now.Add(time.Duration(n) * time.Second)
	}
	return s, true
}
