package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/sipwall/sipwall/internal/policy"
)

func runInit(e *env) int {
	fs := newFlags(e, "init", "[-o FILE|-] [--hostname NAME] [--sshd-config FILE] [--asterisk-dir DIR] [--force]")
	out := fs.String("o", policy.DefaultPath, "write the policy to `file` (- for stdout)")
	hostname := fs.String("hostname", "", "the secret `hostname` your phones use to reach the server")
	sshdConfig := fs.String("sshd-config", "/etc/ssh/sshd_config", "sshd configuration `file` to read the SSH port from")
	force := fs.Bool("force", false, "overwrite an existing policy file")
	asteriskDir := fs.String("asterisk-dir", "", "read the SIP transports, RTP range, IAX2 and trunks from Asterisk's configuration `dir`ectory (FreePBX's included)")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall init: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	v := initValues{Hostname: *hostname, IPv6: hostFacts().IPv6}
	v.SSHPorts = sshPorts(*sshdConfig)
	if p := sshServerPort(os.Getenv("SSH_CONNECTION")); p != 0 && !containsInt(v.SSHPorts, p) {
		v.SSHPorts = append(v.SSHPorts, p)
	}
	if len(v.SSHPorts) == 0 {
		v.SSHPorts = []int{22}
	}
	v.Interfaces = publicInterfaces("/proc/net/route")
	if *asteriskDir != "" {
		pbx, err := readPBXValues(e.stderr, *asteriskDir)
		if err != nil {
			fmt.Fprintf(e.stderr, "sipwall init: --asterisk-dir: %v\n", err)
			return exitUsage
		}
		v.PBX = pbx
	}
	var buf bytes.Buffer
	if err := initTemplate.Execute(&buf, v); err != nil {
		fmt.Fprintf(e.stderr, "sipwall init: %v\n", err)
		return exitFailure
	}
	// The written policy must load: check it before writing anything.
	if _, err := policy.Parse("generated policy", buf.Bytes()); err != nil {
		fmt.Fprintf(e.stderr, "sipwall init: %v\n", err)
		return exitUsage
	}
	if *out == "-" {
		e.stdout.Write(buf.Bytes())
		return exitOK
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		fmt.Fprintf(e.stderr, "sipwall init: %s exists; not overwriting it (use --force, or -o another file)\n", *out)
		return exitFailure
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintf(e.stderr, "sipwall init: %v\n", err)
		return exitFailure
	}
	if err := writeAtomic(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(e.stderr, "sipwall init: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "wrote %s (SSH ports %v, interfaces %v)\n", *out, v.SSHPorts, v.Interfaces)
	if v.Hostname == "" {
		fmt.Fprintln(e.stderr, "note: no --hostname given: SIP is open to everyone but scanners (mode: open). Give your phones a secret hostname and switch to mode: hostname.")
	}
	return exitOK
}

type initValues struct {
	Hostname   string
	SSHPorts   []int
	Interfaces []string
	IPv6       bool
	PBX        *pbxValues // from --asterisk-dir
}

// sshPorts reads the Port lines of an sshd configuration outside Match
// blocks, following Include lines (sshd listens on every Port given).
func sshPorts(file string) []int {
	var ports []int
	seen := map[string]bool{}
	var read func(string)
	read = func(path string) {
		if seen[path] || len(seen) > 64 {
			return
		}
		seen[path] = true
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(strings.ReplaceAll(sc.Text(), "=", " "))
			if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			switch strings.ToLower(fields[0]) {
			case "match":
				return // everything after Match is conditional
			case "port":
				if n, err := strconv.Atoi(fields[1]); err == nil && n > 0 && n < 65536 && !containsInt(ports, n) {
					ports = append(ports, n)
				}
			case "include":
				for _, pat := range fields[1:] {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(file), pat)
					}
					matches, _ := filepath.Glob(pat)
					sort.Strings(matches)
					for _, m := range matches {
						read(m)
					}
				}
			}
		}
	}
	read(file)
	return ports
}

// publicInterfaces returns the interfaces that carry a default route, as
// iptables-style names ("eth+" for any ethN).
func publicInterfaces(routeFile string) []string {
	var out []string
	data, err := os.ReadFile(routeFile)
	if err == nil {
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				name := f[0]
				if strings.HasPrefix(name, "eth") {
					name = "eth+"
				}
				if !containsStr(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	if len(out) == 0 {
		out = []string{"eth+"}
	}
	return out
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

var initTemplate = template.Must(template.New("policy").Parse(`# sipwall policy: the scheme of "Securing Your Asterisk VoIP Server with
# IPTables", with its values as defaults. Every key below is optional; remove
# one to get the default. Check it with 'sipwall check', see the ruleset with
# 'sipwall compile', load it with 'sipwall apply'.

interfaces:
  # Internet-facing interfaces; eth+ matches eth0, eth1...
  public: [{{range $i, $n := .Interfaces}}{{if $i}}, {{end}}{{$n}}{{end}}]

ssh:
  # The SSH port(s) to keep reachable. Found in sshd_config and SSH_CONNECTION.
  ports: [{{range $i, $p := .SSHPorts}}{{if $i}}, {{end}}{{$p}}{{end}}]

# Protect IPv6 with the same policy (the article leaves IPv6 open).
ipv6: {{.IPv6}}

{{if and .PBX .PBX.Trusted}}{{.PBX.Trusted}}{{else}}# trusted:
#   all: [203.0.113.7]          # everything is accepted from these
#   sip: [198.51.100.0/24]      # SIP and RTP only
#   hosts:                      # dynamic IPs by DNS name
#     - {name: home.example.net, access: sip}
{{end}}
sip:
{{- if .Hostname}}
  # hostname: a source reaches SIP once one of its SIP packets carries the
  # secret hostname. Tell your users to configure this name as the server.
  mode: hostname
  hostnames: [{{.Hostname}}]
{{- else}}
  # open: everyone reaches SIP, minus scanners. For the article's protection,
  # give your phones a secret hostname and use:
  #   mode: hostname
  #   hostnames: [pbx-7f3k.example.net]
  mode: open
{{- end}}
{{- if .PBX}}
  # Ports of the transports bound in {{.PBX.Dir}}:
{{.PBX.Ports}}{{- else}}
  # udp_ports: [5060-5082]
  # tcp_ports: [5060-5082]
  # tls_ports: [5061]
  # rtp_ports: [10000-20000]
{{- end}}
  # admit_for: forever          # how long a knock admits a source
  # scanners:
  #   ban_for: forever
  #   signatures: [sundayddr, sipsak, {match: sipvicious, icase: true}, friendly-scanner, ...]
  # rate_limits:
  #   register: {count: 20, per: 10s}
  #   invite: {count: 20, per: 5s}

# traps:
#   ban_for: 10m
#   ports: {25: accept}         # merge into the defaults: 21 drop; 22, 23, 25,
#                               # 1433, 3128, 3306, 3389, 4899, 5900 ban; 80, 443 drop

# spoofing:
#   exempt: [10.0.0.0/8]        # bogon ranges your server or users live in
{{- if and .PBX .PBX.Accept}}

{{.PBX.Accept}}{{end}}
`))
