package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Severity of a lint finding.
type Severity string

// Severities, from blocking to informative.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
)

// Finding is one lint result.
type Finding struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Key      string   `json:"key"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s: %s: %s: %s", loc, f.Severity, f.Key, f.Message)
}

// HostFacts are what lint knows about the host it runs on.
type HostFacts struct {
	// IPv6 is true when the host has IPv6 enabled.
	IPv6 bool
	// SSHServerPort is the server port of the SSH session lint runs in
	// (from SSH_CONNECTION), 0 when not in an SSH session.
	SSHServerPort int
	// SSHClient is the address the SSH session comes from, when known.
	SSHClient netip.Addr
}

// KnownUserAgents are user-agents and server names of real phones and PBXs
// that a scanner signature must not match.
var KnownUserAgents = []string{
	"eyeBeam release 1011d stamp 40820", "X-Lite release 5.8.3", "Zoiper rv2.10.20.4", "Zoiper 5",
	"Linphone/5.0.0 (belle-sip/5.0.0)", "MicroSIP/3.21.3", "Bria 6 release 6.5.2", "Yealink SIP-T46S 66.86.0.15",
	"Grandstream GXP2170 1.0.11.6", "PolycomVVX-VVX_410-UA/5.9.5", "Cisco-SIPGateway/IOS-15.x", "snom D785/10.1.54.13",
	"Asterisk PBX 20.5.0", "FPBX-16.0.40(18.15.0)", "FreePBX", "kamailio (5.6.3 (x86_64/linux))",
	"OpenSIPS (3.4.2 (x86_64/linux))", "FreeSWITCH-mod_sofia/1.10.10", "Ooma", "Fanvil X4U 2.12.1",
	"Gigaset N510 IP PRO/42.250", "Obihai/R OBi202-3.2.2", "CSipSimple_", "Jitsi", "Acrobits Softphone",
	"3CXPhone 6.0", "Blink 5.1.7", "Telephone 1.5", "Counterpath", "AVM FRITZ!Box",
}

// Lint reports what a valid policy may still get wrong. Errors block compile
// and apply unless forced; warnings and infos are advice.
func (p *Policy) Lint(host HostFacts) []Finding {
	var out []Finding
	add := func(sev Severity, key, format string, args ...any) {
		out = append(out, Finding{Severity: sev, File: p.Source, Line: p.lineOf(key), Key: key, Message: fmt.Sprintf(format, args...)})
	}
	scannersOnly := p.SIP.Mode == ModeScannersOnly
	if len(p.SSH.Ports) == 0 && !scannersOnly && p.Defaults.Input == "drop" {
		add(SevError, "ssh.ports", "no SSH port is admitted: applying this policy locks you out of the server (set ssh.ports, or use --force)")
	}
	if host.SSHServerPort != 0 && !scannersOnly && p.Defaults.Input == "drop" && !portIn(p.SSH.Ports, host.SSHServerPort) {
		add(SevError, "ssh.ports", "this SSH session arrives on port %d, which the policy does not admit: it would be cut (add %d to ssh.ports, or use --force)", host.SSHServerPort, host.SSHServerPort)
	}
	if host.SSHClient.IsValid() && !scannersOnly && !host.SSHClient.IsLoopback() {
		c := host.SSHClient.Unmap()
		trusted := false
		for _, t := range p.Trusted.All {
			trusted = trusted || t.Contains(c)
		}
		for _, b := range p.Bogons() {
			if b.Contains(c) && !trusted && (c.Is4() || p.IPv6) {
				add(SevError, "spoofing.exempt", "your SSH client %s is in the bogon range %s: new connections from it would be dropped (add it to spoofing.exempt or trusted.all, or use --force)", c, b)
				break
			}
		}
	}
	for i, s := range p.SIP.Scanners.Signatures {
		for _, ua := range KnownUserAgents {
			if containsCase(ua, s.Match, s.IgnoreCase) {
				add(SevWarning, fmt.Sprintf("sip.scanners.signatures[%d]", i), "%q also matches a real phone or PBX (%q): its users would be banned as scanners", s.Match, ua)
				break
			}
		}
		if len(s.Match) < 4 {
			add(SevWarning, fmt.Sprintf("sip.scanners.signatures[%d]", i), "%q is so short that legitimate packets will contain it", s.Match)
		}
	}
	for i, h := range p.SIP.Hostnames {
		if p.SIP.Mode == ModeHostname && (!strings.Contains(strings.Trim(h, "."), ".") || len(h) < 8) {
			add(SevWarning, fmt.Sprintf("sip.hostnames[%d]", i), "%q is easy to guess: the secret hostname is the key to the SIP ports, choose a long, random sub-domain", h)
		}
	}
	if p.SIP.Mode == ModeUserAgent {
		add(SevInfo, "sip.mode", "user-agent admission is weaker than the hostname knock: any scanner may claim an allowed user-agent")
	}
	for _, a := range []struct {
		key string
		r   Rate
	}{{"sip.answers.auth_failures", p.SIP.Answers.AuthFailures}, {"sip.answers.not_found", p.SIP.Answers.NotFound}} {
		if r := a.r; r.Count > 0 && r.Count < 3 {
			add(SevWarning, a.key+".count", "%d failure answers per %s bans a phone that re-registers with one challenge, or that mistypes a password once: use 10 or more", r.Count, r.Per)
		}
	}
	if p.SIP.Answers.Enabled() {
		add(SevInfo, "sip.answers", "answers are counted per remote address: phones behind one NAT address share it, so put an office's address in trusted.sip or the allowed list")
	}
	out = append(out, p.lintOverlaps()...)
	if host.IPv6 && !p.IPv6 {
		add(SevWarning, "ipv6", "the host has IPv6 enabled but the policy leaves IPv6 alone: every IPv6 port is open to the world (set ipv6: true, or disable IPv6 in sysctl)")
	}
	return out
}

type service struct {
	key   string
	proto string
	ports []Port
}

func (p *Policy) lintOverlaps() []Finding {
	var out []Finding
	var traps []Port
	for _, t := range p.Traps.Ports {
		traps = append(traps, Port{uint16(t.Port), uint16(t.Port)})
	}
	svcs := []service{
		{"ssh.ports", "tcp", p.SSH.Ports},
		{"sip.udp_ports", "udp", p.SIP.UDPPorts},
		{"sip.tcp_ports", "tcp", p.SIPTCPPorts()},
		{"sip.rtp_ports", "udp", p.SIP.RTPPorts},
		{"traps.ports", "tcp", traps},
		{"accept.tcp", "tcp", p.Extra.TCP},
		{"accept.udp", "udp", p.Extra.UDP},
	}
	// Sorted by start, with the furthest-reaching range so far, every
	// overlap is found in O(n log n): a range overlaps an earlier-starting
	// one exactly when it starts before the furthest end reached so far.
	const maxPerKey = 20
	for i, a := range svcs {
		idx := sortedPorts(a.ports)
		n := 0
		reach := -1 // position in idx of the furthest-reaching range so far
		for k, pi := range idx {
			pk := a.ports[pi]
			if reach >= 0 && a.ports[idx[reach]].To >= pk.From {
				if n < maxPerKey {
					out = append(out, Finding{SevWarning, p.Source, p.lineOf(a.key), a.key, fmt.Sprintf("%s and %s overlap", a.ports[idx[reach]], pk)})
				}
				n++
			}
			if reach < 0 || pk.To > a.ports[idx[reach]].To {
				reach = k
			}
		}
		if n > maxPerKey {
			out = append(out, Finding{SevWarning, p.Source, p.lineOf(a.key), a.key, fmt.Sprintf("and %d more overlaps", n-maxPerKey)})
		}
		// The furthest end among the ranges starting at or before each one.
		ends := make([]int, len(idx))
		for k, pi := range idx {
			ends[k] = k
			if k > 0 && a.ports[idx[ends[k-1]]].To >= a.ports[pi].To {
				ends[k] = ends[k-1]
			}
		}
		for _, b := range svcs[i+1:] {
			if a.proto != b.proto || len(idx) == 0 {
				continue
			}
			n := 0
			for _, pb := range b.ports {
				// The ranges of a starting at or before pb's end; the one of
				// them reaching furthest overlaps pb if any does.
				k := sort.Search(len(idx), func(k int) bool { return a.ports[idx[k]].From > pb.To }) - 1
				if k < 0 {
					continue
				}
				pa := a.ports[idx[ends[k]]]
				if pa.To < pb.From {
					continue
				}
				if n < maxPerKey {
					out = append(out, Finding{SevWarning, p.Source, p.lineOf(b.key), b.key,
						fmt.Sprintf("%s/%s overlaps %s %s: the first rule to match wins (%s)", b.proto, pb, a.key, pa, a.key)})
				}
				n++
			}
			if n > maxPerKey {
				out = append(out, Finding{SevWarning, p.Source, p.lineOf(b.key), b.key, fmt.Sprintf("and %d more ports overlap %s", n-maxPerKey, a.key)})
			}
		}
	}
	return out
}

// sortedPorts returns the indexes of ps sorted by start, then end.
func sortedPorts(ps []Port) []int {
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool {
		a, b := ps[idx[x]], ps[idx[y]]
		return a.From < b.From || a.From == b.From && a.To < b.To
	})
	return idx
}

func portIn(ports []Port, n int) bool {
	for _, p := range ports {
		if int(p.From) <= n && n <= int(p.To) {
			return true
		}
	}
	return false
}

func containsCase(s, sub string, icase bool) bool {
	if icase {
		return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
	}
	return strings.Contains(s, sub)
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SevError {
			return true
		}
	}
	return false
}
