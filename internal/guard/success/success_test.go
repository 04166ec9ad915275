package success

import (
	"strings"
	"testing"
	"time"
)

const sec = `[2024-03-01 10:00:00] SECURITY[28564] res_security_log.c: `

func TestLine(t *testing.T) {
	for _, c := range []struct {
		name, line, addr string
		port             uint16
		account          string
	}{
		{"pjsip, password", sec + `SecurityEvent="SuccessfulAuth",EventTV="2024-03-01T10:00:00.123+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1001",SessionID="6b3c1e1a-4e0f",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5062",UsingPassword="1"` + "\n", "198.51.100.7", 5062, "1001"},
		{"chan_sip, session time", `[Mar  1 10:00:00] SECURITY[1234] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="1368439853-500975",Severity="Informational",Service="SIP",EventVersion="1",AccountID="1002",SessionID="0x7f8ecc0421f8",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/203.0.113.44/5060",UsingPassword="1",SessionTV="1368439853-500975"`, "203.0.113.44", 5060, "1002"},
		{"IPv6 over TLS", sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1003",SessionID="x",LocalAddress="IPV6/TLS/2001:db8::10/5061",RemoteAddress="IPV6/TLS/2001:db8:1::7/40112",UsingPassword="1"`, "2001:db8:1::7", 40112, "1003"},
		{"journal message, no prefix", `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1004",SessionID="x",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.8/5060",UsingPassword="1"`, "198.51.100.8", 5060, "1004"},
	} {
		s, ok := Line([]byte(c.line))
		if !ok || s.Kind != SuccessfulAuth || s.Addr.String() != c.addr || s.Port != c.port || s.Account != c.account {
			t.Errorf("%s: %+v %v, want %s:%d %s", c.name, s, ok, c.addr, c.port, c.account)
		}
	}
	for _, c := range []struct{ name, line string }{
		{"a failure", sec + `SecurityEvent="InvalidPassword",EventTV="1",Severity="Error",Service="SIP",EventVersion="2",AccountID="1001",SessionID="x",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060",Challenge="a",ReceivedChallenge="a",ReceivedHash="b"`},
		{"challenge sent", sec + `SecurityEvent="ChallengeSent",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1001",SessionID="x",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060",Challenge="abc"`},
		{"no password (a peer matched by address)", sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="SIP",EventVersion="1",AccountID="trunk",SessionID="x",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060",UsingPassword="0"`},
		// The caller's AccountID forges a RemoteAddress: Asterisk's own
		// follows it, so the forged one is not the last; a forged one
		// after Asterisk's would break the tail.
		{"address in the account name, real one missing", sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="x",RemoteAddress="IPV4/UDP/6.6.6.6/5060",SessionID="y",LocalAddress="IPV4/UDP/192.0.2.10/5060"`},
		{"loopback", sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1",SessionID="x",LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/127.0.0.1/5060",UsingPassword="1"`},
		{"ordinary line", `[2024-03-01 10:00:00] VERBOSE[1234] pbx.c: Executing [1001@from-internal:1] Dial("PJSIP/1002-00000001", "PJSIP/1001") in new stack`},
	} {
		if s, ok := Line([]byte(c.line)); ok {
			t.Errorf("%s: %+v, want no success", c.name, s)
		}
	}
	forged := sec + `SecurityEvent="SuccessfulAuth",EventTV="1",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="x",RemoteAddress="IPV4/UDP/6.6.6.6/5060",SessionID="y",LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060",UsingPassword="1"`
	if s, ok := Line([]byte(forged)); !ok || s.Addr.String() != "198.51.100.7" {
		t.Errorf("forged address in the account name: %+v %v, want Asterisk's 198.51.100.7", s, ok)
	}
}

// block turns the manager's CRLF text into a block as package ami hands
// it over (lines ending in LF).
func block(s string) []byte { return []byte(strings.ReplaceAll(s, "\r\n", "\n")) }

func TestAMI(t *testing.T) {
	now := time.Unix(1709287000, 0)
	for _, c := range []struct {
		name, block, addr string
		port              uint16
		kind              Kind
		expires           time.Time
	}{
		{"pjsip contact created (Asterisk 18)", "Event: ContactStatus\r\nPrivilege: system,all\r\nURI: sip:1001@198.51.100.7:5062;transport=udp\r\nContactStatus: Created\r\nAOR: 1001\r\nEndpointName: 1001\r\nRoundtripUsec: 0\r\nUserAgent: Yealink SIP-T46S 66.85.0.5\r\nRegExpire: 1709290600\r\nViaAddress: 10.0.0.23:5062\r\nCallID: 0_2839402@10.0.0.23\r\n", "198.51.100.7", 5062, ContactStatus, time.Unix(1709290600, 0)},
		{"pjsip contact reachable, IPv6", "Event: ContactStatus\r\nPrivilege: system,all\r\nURI: sip:1002@[2001:db8:1::7]:5060\r\nContactStatus: Reachable\r\nAOR: 1002\r\nEndpointName: 1002\r\nRoundtripUsec: 1733\r\n", "2001:db8:1::7", 5060, ContactStatus, time.Time{}},
		{"chan_sip peer registered", "Event: PeerStatus\r\nPrivilege: system,all\r\nChannelType: SIP\r\nPeer: SIP/1003\r\nPeerStatus: Registered\r\nAddress: 203.0.113.44:5060\r\n", "203.0.113.44", 5060, PeerStatus, time.Time{}},
		{"chan_sip peer registered, Asterisk 1.8 (Port apart)", "Event: PeerStatus\r\nPrivilege: system,all\r\nChannelType: SIP\r\nPeer: SIP/1004\r\nPeerStatus: Registered\r\nAddress: 203.0.113.45\r\nPort: 5070\r\n", "203.0.113.45", 5070, PeerStatus, time.Time{}},
		{"security event with expiry", "Event: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: 2024-03-01T10:00:00.123+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 1001\r\nSessionID: 6b3c1e1a\r\nLocalAddress: IPV4/UDP/192.0.2.10/5060\r\nRemoteAddress: IPV4/UDP/198.51.100.9/5060\r\nUsingPassword: 1\r\n", "198.51.100.9", 5060, SuccessfulAuth, time.Time{}},
	} {
		s, ok := AMI(block(c.block), now)
		if !ok || s.Kind != c.kind || s.Addr.String() != c.addr || s.Port != c.port || !s.Expires.Equal(c.expires) {
			t.Errorf("%s: %+v %v, want %s %s:%d until %v", c.name, s, ok, c.kind, c.addr, c.port, c.expires)
		}
	}
	for _, c := range []struct{ name, block string }{
		{"contact removed", "Event: ContactStatus\r\nURI: sip:1001@198.51.100.7:5062\r\nContactStatus: Removed\r\nAOR: 1001\r\n"},
		{"contact unreachable", "Event: ContactStatus\r\nURI: sip:1001@198.51.100.7:5062\r\nContactStatus: Unreachable\r\nAOR: 1001\r\n"},
		{"contact by host name", "Event: ContactStatus\r\nURI: sip:1001@phone.example.net:5062\r\nContactStatus: Created\r\nAOR: 1001\r\n"},
		{"peer unregistered", "Event: PeerStatus\r\nChannelType: SIP\r\nPeer: SIP/1003\r\nPeerStatus: Unregistered\r\nCause: Expired\r\n"},
		{"pjsip peer reachable, no address", "Event: PeerStatus\r\nChannelType: PJSIP\r\nPeer: PJSIP/1001\r\nPeerStatus: Reachable\r\n"},
		{"failure", "Event: InvalidPassword\r\nRemoteAddress: IPV4/UDP/198.51.100.7/5060\r\n"},
		{"success without a password", "Event: SuccessfulAuth\r\nAccountID: trunk\r\nRemoteAddress: IPV4/UDP/198.51.100.7/5060\r\nUsingPassword: 0\r\n"},
		{"two addresses", "Event: SuccessfulAuth\r\nRemoteAddress: IPV4/UDP/198.51.100.7/5060\r\nRemoteAddress: IPV4/UDP/6.6.6.6/5060\r\nUsingPassword: 1\r\n"},
	} {
		if s, ok := AMI(block(c.block), now); ok {
			t.Errorf("%s: %+v, want no success", c.name, s)
		}
	}
}

func TestLineAllocs(t *testing.T) {
	line := []byte(`[2024-03-01 10:00:00] VERBOSE[1234] pbx.c: Executing [1001@from-internal:1] Dial("PJSIP/1002-00000001", "PJSIP/1001") in new stack`)
	if n := testing.AllocsPerRun(100, func() { Line(line) }); n != 0 {
		t.Errorf("%v allocations for an ordinary line", n)
	}
}
