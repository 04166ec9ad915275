package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sipwall/sipwall/internal/audit"
)

// pbxValues are the parts of the policy init writes from Asterisk's
// configuration (--asterisk-dir), already formatted as YAML lines.
type pbxValues struct {
	Dir string
	// Trusted is the trusted: block (trunks), "" when there is no trunk.
	Trusted string
	// Ports are the sip: port lines (udp_ports, tcp_ports, tls_ports,
	// rtp_ports) with comments saying where each comes from.
	Ports string
	// Accept is the accept: block (IAX2), "" when there is nothing to add.
	Accept string
}

// readPBXValues reads dir and formats what the policy takes from it; it
// says on w what it found and what it could not read.
func readPBXValues(w io.Writer, dir string) (*pbxValues, error) {
	pbx, err := audit.ReadPBX(dir, nil)
	if err != nil {
		return nil, err
	}
	for _, p := range pbx.Problems {
		fmt.Fprintf(w, "sipwall init: warning: %s\n", p)
	}
	v := &pbxValues{Dir: dir}
	v.Trusted = trustedBlock(pbx)
	v.Ports = portLines(w, pbx)
	if pbx.IAX != nil {
		v.Accept = fmt.Sprintf("accept:\n  # IAX2 (%s)\n  udp: [%d]\n", pbx.IAX.Where, pbx.IAX.Port)
	}
	for _, t := range pbx.Transports {
		fmt.Fprintf(w, "found %s (%s)\n", t, t.Where)
	}
	fmt.Fprintf(w, "found RTP ports %s\n", pbx.RTP)
	for _, t := range pbx.Trunks {
		fmt.Fprintf(w, "trusting trunk %s: %s (%s, %s)\n", t.Name, t.Host, t.Source, t.Where)
	}
	return v, nil
}

// trustedBlock trusts every trunk for SIP: addresses and networks in
// trusted.sip, host names in trusted.hosts (resolved when the policy is
// compiled and re-resolved by guard).
func trustedBlock(pbx *audit.PBX) string {
	if len(pbx.Trunks) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# The trunks of the Asterisk configuration in " + pbx.Dir + ": trusted for SIP and RTP,\n")
	b.WriteString("# never banned, trapped or rate-limited, whatever their calls carry.\n")
	b.WriteString("trusted:\n")
	var nets, names []audit.Trunk
	for _, t := range pbx.Trunks {
		if t.IsName() {
			names = append(names, t)
		} else {
			nets = append(nets, t)
		}
	}
	if len(nets) > 0 {
		b.WriteString("  sip:\n")
		for _, t := range nets {
			fmt.Fprintf(&b, "    - %s    # %s: %s (%s)\n", yamlScalar(t.Host), t.Name, t.Source, t.Where)
		}
	}
	if len(names) > 0 {
		b.WriteString("  hosts:                      # resolved at compile and apply, re-resolved by guard\n")
		for _, t := range names {
			fmt.Fprintf(&b, "    - {name: %s, access: sip}    # %s: %s (%s)\n", t.Host, t.Name, t.Source, t.Where)
		}
	}
	return b.String()
}

// yamlScalar quotes IPv6 addresses (a colon is YAML syntax).
func yamlScalar(s string) string {
	if strings.Contains(s, ":") {
		return `"` + s + `"`
	}
	return s
}

// portLines are the sip: port settings that follow the transports bound.
func portLines(w io.Writer, pbx *audit.PBX) string {
	var udp, tcp, tls []uint16
	from := map[string][]string{}
	for _, t := range pbx.Transports {
		key := ""
		switch t.Protocol {
		case "udp":
			key = "udp_ports"
			udp = appendPort(udp, t.Port)
		case "tcp", "ws":
			key = "tcp_ports"
			tcp = appendPort(tcp, t.Port)
		case "tls", "wss":
			key = "tls_ports"
			tls = appendPort(tls, t.Port)
		default:
			continue
		}
		from[key] = append(from[key], fmt.Sprintf("%s %s [%s] %d", t.Driver, strings.ToUpper(t.Protocol), t.Name, t.Port))
	}
	var b strings.Builder
	line := func(key string, ports []uint16) {
		if len(ports) == 0 {
			fmt.Fprintf(&b, "  %s: []    # no such transport in %s\n", key, pbx.Dir)
			return
		}
		ss := make([]string, len(ports))
		for i, p := range ports {
			ss[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "  %s: [%s]    # %s\n", key, strings.Join(ss, ", "), strings.Join(from[key], "; "))
	}
	if len(udp)+len(tcp)+len(tls) == 0 {
		fmt.Fprintf(w, "sipwall init: warning: no SIP transport found in %s: the default SIP ports are kept\n", pbx.Dir)
		b.WriteString("  # no SIP transport found in " + pbx.Dir + ": the default ports\n")
	} else {
		line("udp_ports", udp)
		line("tcp_ports", tcp)
		line("tls_ports", tls)
	}
	where := "Asterisk's default: rtp.conf does not set rtpstart/rtpend"
	if pbx.RTPAt.File != "" {
		where = "rtp.conf, " + pbx.RTPAt.String()
	}
	fmt.Fprintf(&b, "  rtp_ports: [%s]    # %s\n", pbx.RTP, where)
	return b.String()
}

func appendPort(ps []uint16, p uint16) []uint16 {
	if slices.Contains(ps, p) {
		return ps
	}
	ps = append(ps, p)
	slices.Sort(ps)
	return ps
}
