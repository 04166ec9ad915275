package audit

import (
	"fmt"
	"strings"
)

// Uncovered compares the PBX with what a policy admits and returns a
// finding for every SIP transport, the RTP range, IAX2 and every trunk the
// policy does not cover: calls that would be dropped, one-way audio, a
// carrier cut off by what its callers write.
func (p *PBX) Uncovered(e *Exposure) []Finding {
	var out []Finding
	for _, t := range p.Transports {
		proto := "tcp"
		if t.UDP() {
			proto = "udp"
		}
		if e.admits(proto, t.Port) {
			continue
		}
		key := map[string]string{"udp": "sip.udp_ports", "tcp": "sip.tcp_ports", "ws": "sip.tcp_ports", "tls": "sip.tls_ports", "wss": "sip.tls_ports"}[t.Protocol]
		why := "phones and trunks using it get no answer: their registrations and calls are dropped without a word"
		if t.Protocol == "wss" || t.Protocol == "ws" {
			why = "browsers (WebRTC) connect to it for SIP over WebSocket: their registrations and calls are dropped without a word"
		}
		if e.traps(proto, t.Port) {
			why += "; worse, the port is a trap port, so every client that tries it is banned"
		}
		out = append(out, Finding{
			Severity: High, Check: "policy.transport_blocked", File: t.File, Line: t.Line,
			Found: fmt.Sprintf("%s, and the policy does not admit %s port %d", t, strings.ToUpper(proto), t.Port),
			Why:   why,
			Fix:   fmt.Sprintf("add %d to %s in the policy (sipwall init --asterisk-dir writes the ports of every transport)", t.Port, key),
		})
	}
	if missing := uncoveredRange(e.UDPPorts, p.RTP); missing != "" {
		out = append(out, Finding{
			Severity: High, Check: "policy.rtp_not_covered", File: p.RTPAt.File, Line: p.RTPAt.Line,
			Found: fmt.Sprintf("Asterisk sends and expects RTP on UDP %s, and the policy does not admit %s", p.RTP, missing),
			Why:   "calls connect but the audio on those ports is dropped: one-way or no audio",
			Fix:   fmt.Sprintf("set `rtp_ports: [%s]` under sip: in the policy, or narrow rtpstart/rtpend in rtp.conf to the policy's range", p.RTP),
		})
	}
	if p.IAX != nil && !e.admits("udp", p.IAX.Port) {
		out = append(out, Finding{
			Severity: High, Check: "policy.iax_blocked", File: p.IAX.File, Line: p.IAX.Line,
			Found: fmt.Sprintf("chan_iax2 is loaded and configured on UDP %d, and the policy does not admit it", p.IAX.Port),
			Why:   "IAX2 peers and trunks get no answer",
			Fix:   fmt.Sprintf("add %d to accept.udp in the policy, or `noload => chan_iax2.so` if IAX2 is unused", p.IAX.Port),
		})
	}
	for _, t := range p.Trunks {
		if e.trustsTrunk(t) {
			continue
		}
		sev, why := Medium, "a caller's display name or a message carrying a scanner signature bans it, and the INVITE limit throttles it: anyone who can place a call through it can cut the PBX off from its carrier"
		if e.KnockSIP {
			sev, why = High, "it sends INVITEs to the server's address without the secret hostname, so its inbound calls are dropped; and what its callers write can ban it"
		}
		key, value := "trusted.sip", t.Host
		if t.IsName() {
			key, value = "trusted.hosts", fmt.Sprintf("{name: %s, access: sip}", t.Host)
		}
		out = append(out, Finding{
			Severity: sev, Check: "policy.trunk_not_trusted", File: t.File, Line: t.Line,
			Found: fmt.Sprintf("trunk %s (%s %s) is not trusted by the policy", t.Name, t.Source, t.Host),
			Why:   why,
			Fix:   fmt.Sprintf("add %s to %s in the policy", value, key),
		})
	}
	return out
}

// trustsTrunk reports whether the policy trusts the trunk's address,
// network or name.
func (e *Exposure) trustsTrunk(t Trunk) bool {
	if t.IsName() {
		for _, h := range e.TrustedHosts {
			if strings.EqualFold(strings.TrimSuffix(h, "."), t.Host) {
				return true
			}
		}
		return false
	}
	for _, q := range e.Trusted {
		if q.Bits() <= t.Prefix.Bits() && q.Contains(t.Prefix.Addr()) {
			return true
		}
	}
	return false
}

// uncoveredRange returns the parts of r that no range of rs covers, as
// "a-b, c", or "" when r is covered.
func uncoveredRange(rs []PortRange, r PortRange) string {
	var parts []string
	start := -1
	for p := int(r.First); p <= int(r.Last)+1; p++ {
		covered := p > int(r.Last) || inRanges(rs, uint16(p))
		switch {
		case !covered && start < 0:
			start = p
		case covered && start >= 0:
			parts = append(parts, PortRange{uint16(start), uint16(p - 1)}.String())
			start = -1
		}
	}
	return strings.Join(parts, ", ")
}
