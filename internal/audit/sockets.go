package audit

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// socket is a listening TCP socket or a bound, unconnected UDP socket.
type socket struct {
	Proto string // "tcp" or "udp"
	Table string // the /proc/net file it came from: tcp, tcp6, udp, udp6
	Addr  netip.Addr
	Port  uint16
	Inode uint64
	PID   int
	Comm  string
}

func (s socket) v6() bool { return strings.HasSuffix(s.Table, "6") }

func (s socket) String() string {
	owner := "owner unknown"
	if s.PID > 0 {
		owner = fmt.Sprintf("%s, pid %d", s.Comm, s.PID)
	}
	return fmt.Sprintf("%s %s (%s)", s.Table, netip.AddrPortFrom(s.Addr, s.Port), owner)
}

// TCP states in /proc/net/tcp.
const (
	tcpListen = 0x0A
	tcpClose  = 0x07 // what an unconnected UDP socket reports
)

// parseProcNet reads one /proc/net/{tcp,udp,tcp6,udp6} table and returns its
// listening sockets. Malformed lines are returned as problems.
func parseProcNet(table string, data []byte) ([]socket, []string) {
	proto := strings.TrimSuffix(table, "6")
	var out []socket
	var probs []string
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if n == 0 || len(f) == 0 {
			continue // header
		}
		if len(f) < 10 {
			probs = append(probs, fmt.Sprintf("line %d: %d fields, want at least 10", n+1, len(f)))
			continue
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			probs = append(probs, fmt.Sprintf("line %d: bad state %q", n+1, f[3]))
			continue
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			probs = append(probs, fmt.Sprintf("line %d: %v", n+1, err))
			continue
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			probs = append(probs, fmt.Sprintf("line %d: %v", n+1, err))
			continue
		}
		switch {
		case proto == "tcp" && st == tcpListen:
		case proto == "udp" && st == tcpClose && remote.Port() == 0 && remote.Addr().IsUnspecified():
		default:
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			probs = append(probs, fmt.Sprintf("line %d: bad inode %q", n+1, f[9]))
			continue
		}
		out = append(out, socket{Proto: proto, Table: table, Addr: local.Addr(), Port: local.Port(), Inode: inode})
	}
	return out, probs
}

// parseHexAddrPort decodes the kernel's "0100007F:1F90" notation: the
// address as 32-bit words in host (little-endian) order, the port in hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		w := binary.BigEndian.Uint32(raw[i:])
		binary.LittleEndian.PutUint32(raw[i:], w)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// socketOwners maps socket inodes to the process holding them, from the
// /proc/PID/fd/N -> "socket:[INODE]" links.
func (a *auditor) socketOwners() map[uint64]socket {
	owners := map[uint64]socket{}
	entries, err := a.files.ReadDir(a.cfg.Proc)
	if err != nil {
		return owners
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fds, err := a.files.ReadDir(a.procPath(e.Name(), "fd"))
		if err != nil {
			continue // the process exited, or it is not ours to read
		}
		comm := ""
		for _, fd := range fds {
			target, err := a.files.ReadLink(a.procPath(e.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			rest, ok := strings.CutPrefix(target, "socket:[")
			if !ok {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
			if err != nil {
				continue
			}
			if comm == "" {
				comm = "?"
				if b, err := a.files.ReadFile(a.procPath(e.Name(), "comm")); err == nil {
					comm = strings.TrimSpace(string(b))
				}
			}
			if _, seen := owners[inode]; !seen {
				owners[inode] = socket{PID: pid, Comm: comm}
			}
		}
	}
	return owners
}

// listeners returns the sockets reachable beyond this host (not bound to
// loopback or a private address), one per protocol, address and port.
func (a *auditor) listeners() ([]socket, bool) {
	var all []socket
	found := false
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		path := a.procPath("net", table)
		data, ok := a.readConfig(path)
		if !ok {
			continue
		}
		found = true
		socks, probs := parseProcNet(table, data)
		for _, p := range probs {
			a.add(Finding{
				Severity: Low, Check: "sockets.syntax", File: path,
				Found: p,
				Why:   "a line of the socket table could not be read, so a listener may be missing from the audit",
				Fix:   "check that the file is a copy of /proc/net/" + table + " (copy it with cat, not cp)",
			})
		}
		all = append(all, socks...)
	}
	if !found {
		return nil, false
	}
	owners := a.socketOwners()
	var out []socket
	seen := map[string]bool{}
	for _, s := range all {
		if !classifyBind(s.Addr.Unmap().String()).reachable() {
			continue
		}
		key := fmt.Sprintf("%s|%s|%d", s.Table, s.Addr, s.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		if o, ok := owners[s.Inode]; ok {
			s.PID, s.Comm = o.PID, o.Comm
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y socket) int {
		if c := strings.Compare(x.Table, y.Table); c != 0 {
			return c
		}
		if x.Port != y.Port {
			return int(x.Port) - int(y.Port)
		}
		return x.Addr.Compare(y.Addr)
	})
	return out, true
}

// ipv6Enabled reports whether the kernel has IPv6 enabled.
func (a *auditor) ipv6Enabled() bool {
	b, err := a.files.ReadFile(a.procPath("sys", "net", "ipv6", "conf", "all", "disable_ipv6"))
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

func (a *auditor) checkSockets(ctx context.Context) {
	socks, ok := a.listeners()
	if !ok {
		a.add(Finding{
			Severity: Info, Check: "sockets.not_checked", File: a.procPath("net"),
			Found: "no socket tables under " + a.procPath("net"),
			Why:   "listening sockets are compared with what the policy admits",
			Fix:   "point --proc at the proc file system (or a copy holding net/tcp, net/udp, net/tcp6, net/udp6)",
		})
		return
	}
	exp := a.cfg.Exposure
	if exp == nil {
		if len(socks) == 0 {
			return
		}
		var list []string
		for _, s := range socks {
			list = append(list, s.String())
		}
		a.add(Finding{
			Severity: Info, Check: "sockets.listening", File: a.procPath("net"),
			Found: "listening beyond this host: " + strings.Join(list, "; "),
			Why:   "without a policy the audit cannot tell which of them the firewall admits",
			Fix:   "run with -c POLICY, or check each one is meant to be reachable",
		})
		return
	}
	v6 := a.ipv6Enabled()
	for _, s := range socks {
		if s.v6() && v6 && !exp.IPv6 && !s.Addr.Is4In6() {
			a.add(Finding{
				Severity: High, Check: "sockets.ipv6_unfiltered", File: a.procPath("net", s.Table),
				Found: s.String() + " is reachable over IPv6, and the policy does not filter IPv6",
				Why:   "over IPv6 none of the IPv4 rules apply: no scanner bans, no rate limits, no port restrictions",
				Fix:   "enable IPv6 in the policy (ipv6: true) so sipwall filters it too, bind the service to IPv4 only, or disable IPv6 (net.ipv6.conf.all.disable_ipv6 = 1)",
			})
		}
		switch {
		case exp.admits(s.Proto, s.Port):
		case exp.traps(s.Proto, s.Port):
			a.add(Finding{
				Severity: Low, Check: "sockets.on_trap_port", File: a.procPath("net", s.Table),
				Found: s.String() + " listens on a port the policy treats as a trap",
				Why:   "clients connecting to it are banned as scanners, so the service is unusable from outside",
				Fix:   "move the service to another port, remove the port from the policy's trap ports, or stop the service",
			})
		case exp.DefaultAccept:
			a.add(Finding{
				Severity: High, Check: "sockets.unnamed_reachable", File: a.procPath("net", s.Table),
				Found: s.String() + " is reachable from outside and nothing in the policy names it",
				Why:   "a service nobody meant to expose is an open door the firewall does not know about",
				Fix:   fmt.Sprintf("stop the service or bind it to 127.0.0.1; if it must be reachable, admit %s port %d in the policy; and make the policy's default drop", strings.ToUpper(s.Proto), s.Port),
			})
		case isPBXProcess(s.Comm):
			a.add(Finding{
				Severity: Medium, Check: "sockets.pbx_blocked", File: a.procPath("net", s.Table),
				Found: s.String() + " listens beyond this host, and the policy drops what comes to it",
				Why:   "the PBX opened this port for its clients (a SIP transport, IAX2, WebSocket, RTP): phones, trunks or browsers using it get no answer",
				Fix:   fmt.Sprintf("admit %s port %d in the policy (sip ports, rtp_ports or accept), or bind it to 127.0.0.1 in the PBX's configuration if nothing outside uses it", strings.ToUpper(s.Proto), s.Port),
			})
		default:
			a.add(Finding{
				Severity: Info, Check: "sockets.blocked", File: a.procPath("net", s.Table),
				Found: s.String() + " listens beyond this host, and the policy drops what comes to it",
				Why:   "the firewall keeps it unreachable from outside; if it should be reachable, it is not",
				Fix:   fmt.Sprintf("bind it to 127.0.0.1 if only this host uses it; admit %s port %d in the policy if outside clients need it", strings.ToUpper(s.Proto), s.Port),
			})
		}
	}
}

// isPBXProcess reports whether a process name is a PBX's (Asterisk, Kamailio,
// FreeSWITCH), whose listeners exist for outside clients.
func isPBXProcess(comm string) bool {
	switch comm {
	case "asterisk", "kamailio", "freeswitch", "opensips":
		return true
	}
	return false
}
