package ir

import "fmt"

// Kind says what a rule is for. The compiler gives every rule one; `sipwall
// stats` groups the kernel's counters by it, on either backend. The set of
// kinds is closed; their order is the order stats shows them in.
type Kind uint8

// Kinds.
const (
	// KindNone is no kind: a rule the compiler did not classify.
	KindNone Kind = iota
	// KindScannerSignature: SIP carrying a scanner's signature (the
	// packet is dropped, the source banned); one rule per signature.
	KindScannerSignature
	// KindScannerInspected: SIP of unknown sources handed to the
	// userspace inspector (sipwall guard), which bans scanners by their
	// signature and admits knocks (nftables).
	KindScannerInspected
	// KindScannerBan: a scanner's source put in the scanners list and its
	// packet dropped (the action of the signature rules).
	KindScannerBan
	// KindScannerBanned: packets from sources in the scanners list.
	KindScannerBanned
	// KindBanned: packets from sources in the banned list (by hand, by
	// guard).
	KindBanned
	// KindFleet: packets from sources in the fleet list (CrowdSec's
	// decisions, pulled by guard).
	KindFleet
	// KindFeed: packets from sources on a blocklist feed.
	KindFeed
	// KindTrap: hits on a trap port.
	KindTrap
	// KindTrapBan: a source put in the trapped list (or its ban
	// refreshed) and its packet dropped: trap hits and trapped sources
	// that keep trying.
	KindTrapBan
	// KindTrapped: packets from sources in the trapped list.
	KindTrapped
	// KindAnswer: failure answers the host sends (401/407/403, 404/484),
	// counted per remote address.
	KindAnswer
	// KindAnswerBan: a remote address put in the answered list for
	// collecting failure answers beyond the policy's rate.
	KindAnswerBan
	// KindAnswerBanned: packets from sources in the answered list.
	KindAnswerBanned
	// KindRateLimit: packets over a per-source rate (REGISTER, INVITE,
	// new TCP connections).
	KindRateLimit
	// KindKnock: SIP naming the secret hostname or an allowed user-agent.
	KindKnock
	// KindNoKnock: SIP from sources that have not knocked.
	KindNoKnock
	// KindAdmitted: SIP from admitted or allowed sources.
	KindAdmitted
	// KindBudget: SIP from sources that have not knocked, accepted
	// within their per-source budget (sip.unknown_budget) or dropped
	// beyond it.
	KindBudget
	// KindTrusted: traffic from the policy's trusted networks.
	KindTrusted
	// KindExempt: packets of trusted networks and allowed sources let
	// past the scanner bans, signatures and limits.
	KindExempt
	// KindSpoofing: spoofed or malformed packets (bogon sources, bad
	// destinations, bad TCP flags, empty UDP, new TCP without SYN).
	KindSpoofing
	// KindICMP: ICMP and ICMPv6 by type.
	KindICMP
	// KindConntrack: packets decided by their conntrack state
	// (established flows accepted, invalid dropped).
	KindConntrack
	// KindSSH: SSH.
	KindSSH
	// KindService: the policy's other services (extra TCP and UDP ports,
	// DHCP, trap ports set to accept).
	KindService
	// KindSIP: SIP accepted without a knock (open mode, the TCP
	// handshake).
	KindSIP
	// KindRTP: RTP.
	KindRTP
	// KindLoopback: the loopback interface.
	KindLoopback
	// KindLog: packets logged before the chain's policy.
	KindLog
	// KindDispatch: jumps into sipwall's chains (by interface, protocol
	// or hook) that decide nothing themselves.
	KindDispatch
	numKinds
)

var kindNames = [numKinds]string{
	"", "scanner-signature", "scanner-inspected", "scanner-ban", "scanner-banned", "banned", "fleet", "feed",
	"trap", "trap-ban", "trapped", "answer", "answer-ban", "answer-banned", "rate-limit", "knock", "no-knock", "admitted", "budget", "trusted",
	"exempt", "spoofing", "icmp", "conntrack", "ssh", "service", "sip", "rtp", "loopback", "log", "dispatch",
}

var kindAbout = [numKinds]string{
	"",
	"SIP scans thwarted, by scanner signature (the packet is dropped, the source banned)",
	"SIP packets from unknown sources handed to the inspector (sipwall guard) to look for scanners and knocks",
	"SIP scanners banned by their signature (the source listed, the packet dropped)",
	"packets dropped from sources banned as SIP scanners",
	"packets dropped from sources banned by hand or by guard",
	"packets dropped from sources the fleet banned (CrowdSec decisions)",
	"packets dropped from sources on a blocklist feed",
	"trap port hits (the source is banned from every port)",
	"packets dropped by the trap ban (trap hits and trapped sources; the ban refreshed)",
	"packets dropped from sources caught by a trap port",
	"failure answers sent (401/407/403, 404/484), counted per remote address",
	"addresses banned for collecting failure answers beyond the policy's rate (password guessing, extension enumeration)",
	"packets dropped from sources banned by the failure answers they collected",
	"packets dropped by a per-source rate limit",
	"knocks seen (SIP naming the secret hostname or an admitted user-agent)",
	"SIP dropped because the source has not knocked",
	"SIP accepted from admitted or allowed sources",
	"SIP from sources that have not knocked, within their budget (accepted) or beyond it (dropped)",
	"packets accepted from trusted networks",
	"packets of trusted networks and allowed sources let past the scanner bans, signatures and limits",
	"packets dropped as spoofed or malformed (bogons, bad TCP flags, empty UDP)",
	"ICMP accepted or dropped by type",
	"packets decided by their conntrack state (established accepted, invalid dropped)",
	"SSH connections accepted",
	"packets to the policy's other services",
	"SIP accepted without a knock",
	"RTP accepted",
	"packets on the loopback interface",
	"packets logged before the chain's policy",
	"packets sent on to sipwall's chains",
}

// Kinds returns every kind, in the order stats shows them.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := KindNone + 1; k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

// String returns the kind's name ("scanner-signature"), the key of its
// group in `sipwall stats --json`.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// About says in words what the rules of the kind count.
func (k Kind) About() string {
	if k < numKinds {
		return kindAbout[k]
	}
	return ""
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	for k := KindNone + 1; k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return KindNone, fmt.Errorf("%q is not a kind of rule", s)
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = KindNone
		return nil
	}
	x, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = x
	return nil
}
