package policy

import (
	"net/netip"
	"time"
)

// Default returns the article's values. An empty policy file yields exactly
// this; the SSH port and the secret hostname have no default.
func Default() *Policy {
	return &Policy{
		Interfaces: Interfaces{Public: []string{"eth+"}},
		Defaults:   Defaults{Input: "drop", Forward: "drop", Output: "accept"},
		DHCP:       true,
		IPv6:       true,
		ICMP:       ICMP{Types: []int{0, 3, 4, 8, 11}, DropFragments: true},
		Spoofing: Spoofing{
			Bogons:          prefixes(DefaultBogons...),
			BadDestinations: prefixes(DefaultBadDestinations...),
			BadTCPFlags:     true,
			SynAckReset:     true,
			NewWithoutSyn:   true,
			EmptyUDP:        true,
			SynRate:         Rate{Count: 10, Per: Duration{time.Second}},
		},
		Traps: Traps{
			Ports: TrapPorts{
				{21, TrapDrop}, {22, TrapBan}, {23, TrapBan}, {25, TrapBan}, {80, TrapDrop},
				{443, TrapDrop}, {1433, TrapBan}, {3128, TrapBan}, {3306, TrapBan},
				{3389, TrapBan}, {4899, TrapBan}, {5900, TrapBan},
			},
			BanFor: Duration{10 * time.Minute},
		},
		SIP: SIP{
			Mode:     ModeHostname,
			UDPPorts: []Port{{5060, 5082}},
			TCPPorts: []Port{{5060, 5082}},
			TLSPorts: []Port{{5061, 5061}},
			RTPPorts: []Port{{10000, 20000}},
			Scanners: Scanners{Signatures: DefaultSignatures()},
			RateLimits: MethodRates{
				Register: Rate{Count: 20, Per: Duration{10 * time.Second}},
				Invite:   Rate{Count: 20, Per: Duration{5 * time.Second}},
			},
			Answers: Answers{BanFor: Duration{time.Hour}},
		},
		Lists: Lists{Capacity: 1 << 20},
		Log:   Log{Drops: Rate{Count: 10, Per: Duration{time.Minute}}, Prefix: "sipwall drop: "},
		Guard: Guard{
			FindTime: Duration{10 * time.Minute}, MaxRetry: 5,
			BanTime: Duration{time.Hour}, BanTimeFactor: 2, MaxBanTime: Duration{7 * 24 * time.Hour},
			IgnoreSelf: true, Inspect: true, AdmitRegistered: true, Metrics: "127.0.0.1:9765",
			ResolveEvery: Duration{5 * time.Minute}, SaveEvery: Duration{5 * time.Minute},
			Poll: Interval{10 * time.Millisecond}, MaxLine: 64 << 10,
		},
	}
}

// DefaultSignatures is the article's list of SIP scanner signatures.
func DefaultSignatures() []Signature {
	return []Signature{
		{Match: "sundayddr"},
		{Match: "sipsak"},
		{Match: "sipvicious", IgnoreCase: true},
		{Match: "friendly-scanner"},
		{Match: "iWar"},
		{Match: "sip-scan"},
		{Match: "sipcli"},
		{Match: "eyeBeam"},
		{Match: "VaxSIPUserAgent"},
		{Match: "sip:nm@nm"},
	}
}

// DefaultBogons are source ranges that never appear on the Internet: the
// article's private and reserved IPv4 ranges, today's special-purpose ranges
// (RFC 6890), and their IPv6 counterparts. Remove any with spoofing.exempt.
var DefaultBogons = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
	"::/128", "::1/128", "::ffff:0:0/96", "100::/64", "2001:10::/28", "2001:db8::/32",
	"3ffe::/16", "fc00::/7", "fec0::/10", "ff00::/8",
}

// DefaultBadDestinations are destinations a unicast server never serves:
// broadcast, multicast and loopback addresses arriving on a public interface.
var DefaultBadDestinations = []string{
	"0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32",
	"::1/128", "ff00::/8",
}

func prefixes(ss ...string) []Prefix {
	out := make([]Prefix, len(ss))
	for i, s := range ss {
		out[i] = Prefix{netip.MustParsePrefix(s)}
	}
	return out
}
