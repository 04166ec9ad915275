package audit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHexAddrPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0100007F:0277", "127.0.0.1:631"},
		{"00000000:0016", "0.0.0.0:22"},
		{"0A01A8C0:13C4", "192.168.1.10:5060"},
		{"00000000000000000000000000000000:13C4", "[::]:5060"},
		{"00000000000000000000000001000000:0016", "[::1]:22"},
		{"B80D0120000000000000000001000000:1F98", "[2001:db8::1]:8088"},
		{"0000000000000000FFFF00000A01A8C0:0016", "[::ffff:192.168.1.10]:22"},
	} {
		got, err := parseHexAddrPort(tc.in)
		if err != nil {
			t.Errorf("parseHexAddrPort(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("parseHexAddrPort(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:XYZ", "01007F:0016", "zz00007F:0016"} {
		if _, err := parseHexAddrPort(bad); err == nil {
			t.Errorf("parseHexAddrPort(%q) accepted a malformed address", bad)
		}
	}
}

const procNetHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func procLine(sl int, local, remote, state string, inode int) string {
	return strings.Join([]string{
		"   " + strconv.Itoa(sl) + ":", local, remote, state,
		"00000000:00000000 00:00000000 00000000     0        0", strconv.Itoa(inode), "1 0000000000000000 100 0 0 10 0",
	}, " ") + "\n"
}

// fakeHost writes a /proc and /sys tree for a PBX: sshd on 22 (IPv4 and
// IPv6), Asterisk on SIP, IAX2, RTP, Skinny and the AMI on loopback, a
// node.js app on 8088 and MySQL on a private address.
func fakeHost(t *testing.T) (proc, sys string) {
	t.Helper()
	root := t.TempDir()
	proc, sys = filepath.Join(root, "proc"), filepath.Join(root, "sys")
	zero4, zero6 := "00000000:0000", "00000000000000000000000000000000:0000"
	files := map[string]string{
		"net/tcp": procNetHeader +
			procLine(0, "00000000:0016", zero4, "0A", 1001) + // sshd 0.0.0.0:22
			procLine(1, "0100007F:13AE", zero4, "0A", 1002) + // asterisk AMI 127.0.0.1:5038
			procLine(2, "00000000:07D0", zero4, "0A", 1003) + // asterisk skinny 0.0.0.0:2000
			procLine(3, "0A01A8C0:0CEA", zero4, "0A", 1004) + // mysqld 192.168.1.10:3306
			procLine(4, "0A01A8C0:0016", "0B01A8C0:D431", "01", 1005) + // an established session
			procLine(5, "00000000:1F98", zero4, "0A", 1006) + // node 0.0.0.0:8088
			procLine(6, "00000000:13C4", zero4, "0A", 1007), // asterisk SIP/TCP 0.0.0.0:5060
		"net/udp": procNetHeader +
			procLine(0, "00000000:13C4", zero4, "07", 2001) + // asterisk SIP 0.0.0.0:5060
			procLine(1, "00000000:11D9", zero4, "07", 2002) + // asterisk IAX2 0.0.0.0:4569
			procLine(2, "00000000:2710", zero4, "07", 2003) + // asterisk RTP 0.0.0.0:10000
			procLine(3, "0100007F:0035", zero4, "07", 2004) + // resolver 127.0.0.1:53
			procLine(4, "00000000:2711", "0B01A8C0:2711", "01", 2005), // a connected UDP socket
		"net/tcp6": procNetHeader +
			procLine(0, "00000000000000000000000000000000:0016", zero6, "0A", 3001) + // sshd [::]:22
			procLine(1, "00000000000000000000000001000000:13AE", zero6, "0A", 3002), // [::1]:5038
		"net/udp6": procNetHeader +
			procLine(0, "00000000000000000000000000000000:13C4", zero6, "07", 4001), // asterisk [::]:5060
		"net/if_inet6": "00000000000000000000000000000001 01 80 10 80       lo\n" +
			"20010db8000000000000000000000010 02 40 00 80     eth0\n",
		"sys/net/ipv6/conf/all/disable_ipv6":   "0\n",
		"sys/net/netfilter/nf_conntrack_max":   "262144\n",
		"sys/net/netfilter/nf_conntrack_count": "1200\n",
		"100/comm":                             "sshd\n",
		"200/comm":                             "asterisk\n",
		"300/comm":                             "node\n",
		"400/comm":                             "kworker\n",
		"self/comm":                            "audit\n",
	}
	links := map[string]string{
		"100/fd/3":  "socket:[1001]",
		"100/fd/4":  "socket:[3001]",
		"100/fd/5":  "/dev/null",
		"200/fd/10": "socket:[1002]",
		"200/fd/11": "socket:[1003]",
		"200/fd/12": "socket:[2001]",
		"200/fd/13": "socket:[2002]",
		"200/fd/14": "socket:[2003]",
		"200/fd/15": "socket:[4001]",
		"200/fd/16": "pipe:[77]",
		"200/fd/17": "socket:[1007]",
		"300/fd/3":  "socket:[1006]",
		"self/fd/3": "socket:[1006]",
	}
	writeTree(t, proc, files, links)
	writeTree(t, sys, map[string]string{
		"module/xt_recent/parameters/ip_list_tot":     "2000\n",
		"module/xt_recent/parameters/ip_pkt_list_tot": "100\n",
	}, nil)
	return proc, sys
}

// pbxExposure admits SSH, SIP and RTP, like the article's ruleset.
func pbxExposure() *Exposure {
	return &Exposure{
		Profile:  ProfileSipwall,
		TCPPorts: []PortRange{{22, 22}, {5060, 5082}},
		UDPPorts: []PortRange{{5060, 5082}, {10000, 20000}},
	}
}

func foundOf(r *Report, prefix string) []string {
	var out []string
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Check, prefix) {
			out = append(out, f.Check+": "+f.Found)
		}
	}
	return out
}

func TestSocketsAgainstPolicy(t *testing.T) {
	proc, sys := fakeHost(t)
	for _, tc := range []struct {
		name string
		exp  func(*Exposure)
		want []string
	}{
		{
			name: "default accept, no IPv6 rules",
			exp:  func(e *Exposure) { e.DefaultAccept = true },
			want: []string{
				"sockets.ipv6_unfiltered: tcp6 [::]:22 (sshd, pid 100) is reachable over IPv6, and the policy does not filter IPv6",
				"sockets.ipv6_unfiltered: udp6 [::]:5060 (asterisk, pid 200) is reachable over IPv6, and the policy does not filter IPv6",
				"sockets.unnamed_reachable: tcp 0.0.0.0:2000 (asterisk, pid 200) is reachable from outside and nothing in the policy names it",
				"sockets.unnamed_reachable: tcp 0.0.0.0:8088 (node, pid 300) is reachable from outside and nothing in the policy names it",
				"sockets.unnamed_reachable: udp 0.0.0.0:4569 (asterisk, pid 200) is reachable from outside and nothing in the policy names it",
			},
		},
		{
			name: "default drop with IPv6 rules",
			exp:  func(e *Exposure) { e.IPv6 = true },
			// Listeners the policy drops: the PBX's are its clients' loss.
			want: []string{
				"sockets.pbx_blocked: tcp 0.0.0.0:2000 (asterisk, pid 200) listens beyond this host, and the policy drops what comes to it",
				"sockets.pbx_blocked: udp 0.0.0.0:4569 (asterisk, pid 200) listens beyond this host, and the policy drops what comes to it",
				"sockets.blocked: tcp 0.0.0.0:8088 (node, pid 300) listens beyond this host, and the policy drops what comes to it",
			},
		},
		{
			name: "skinny on a trap port",
			exp: func(e *Exposure) {
				e.IPv6 = true
				e.TrapTCPPorts = []PortRange{{2000, 2000}, {3306, 3306}}
			},
			want: []string{
				"sockets.pbx_blocked: udp 0.0.0.0:4569 (asterisk, pid 200) listens beyond this host, and the policy drops what comes to it",
				"sockets.on_trap_port: tcp 0.0.0.0:2000 (asterisk, pid 200) listens on a port the policy treats as a trap",
				"sockets.blocked: tcp 0.0.0.0:8088 (node, pid 300) listens beyond this host, and the policy drops what comes to it",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := pbxExposure()
			tc.exp(exp)
			r := runAudit(t, Config{Proc: proc, Sys: sys, Exposure: exp})
			if diff := cmp.Diff(tc.want, foundOf(r, "sockets.")); diff != "" {
				t.Errorf("socket findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSocketsWithoutPolicy(t *testing.T) {
	proc, sys := fakeHost(t)
	r := runAudit(t, Config{Proc: proc, Sys: sys})
	want := []string{
		"sockets.listening: listening beyond this host: " +
			"tcp 0.0.0.0:22 (sshd, pid 100); tcp 0.0.0.0:2000 (asterisk, pid 200); tcp 0.0.0.0:5060 (asterisk, pid 200); tcp 0.0.0.0:8088 (node, pid 300); " +
			"tcp6 [::]:22 (sshd, pid 100); udp 0.0.0.0:4569 (asterisk, pid 200); udp 0.0.0.0:5060 (asterisk, pid 200); " +
			"udp 0.0.0.0:10000 (asterisk, pid 200); udp6 [::]:5060 (asterisk, pid 200)",
	}
	if diff := cmp.Diff(want, foundOf(r, "sockets.")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	find(t, r, "policy.not_given", ":0")
	if got := atLeast(r, "", Low); len(got) != 0 {
		t.Errorf("without a policy the host checks report only info, got %v", got)
	}
}

func TestSocketsMalformedTable(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"net/tcp": procNetHeader + "   0: 00000000:0016 00000000:0000 0A\n" +
			procLine(1, "0000000G:0016", "00000000:0000", "0A", 7) +
			procLine(2, "00000000:1F98", "00000000:0000", "0A", 8),
	}, nil)
	r := runAudit(t, Config{Proc: root, Exposure: &Exposure{DefaultAccept: true}})
	want := []string{
		"low sockets.syntax net/tcp:0",
		"low sockets.syntax net/tcp:0",
	}
	if diff := cmp.Diff(want, keys(r, root, "sockets.syntax")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The good line is still audited; its owner is unknown.
	want = []string{"sockets.unnamed_reachable: tcp 0.0.0.0:8088 (owner unknown) is reachable from outside and nothing in the policy names it"}
	if diff := cmp.Diff(want, foundOf(r, "sockets.unnamed")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSocketsNoProc(t *testing.T) {
	r := runAudit(t, Config{Exposure: pbxExposure()})
	if f := find(t, r, "sockets.not_checked", "net:0"); f.Severity != Info {
		t.Errorf("a missing /proc is info, got %s", f.Severity)
	}
}

// TestSocketsLiveProc opens real sockets and finds them, with this process
// as their owner, in the kernel's own /proc.
func TestSocketsLiveProc(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system")
	}
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	owner := fmt.Sprintf("%s, pid %d", strings.TrimSpace(string(comm)), os.Getpid())
	r := runAudit(t, Config{Proc: "/proc"})
	f := find(t, r, "sockets.listening", "net:0")
	for _, want := range []string{
		fmt.Sprintf("tcp 0.0.0.0:%d (%s)", ln.Addr().(*net.TCPAddr).Port, owner),
		fmt.Sprintf("udp 0.0.0.0:%d (%s)", pc.LocalAddr().(*net.UDPAddr).Port, owner),
	} {
		if !strings.Contains(f.Found, want) {
			t.Errorf("live listeners do not include %q:\n%s", want, f.Found)
		}
	}
	for _, f := range r.Findings {
		if f.Check == "sockets.syntax" || f.Check == "input.unreadable" {
			t.Errorf("the live /proc must parse cleanly: %s %s", f.Check, f.Found)
		}
	}
}
