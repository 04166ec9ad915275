package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/sipwall/sipwall/internal/audit"
	"github.com/sipwall/sipwall/internal/policy"
)

// Where init looks by default (tests point them elsewhere).
var (
	initSSHDConfig  = audit.DefaultSSHDConfig
	initAsteriskDir = audit.DefaultAsteriskDir
	// systemdUnitDirs are searched for asterisk.service.
	systemdUnitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
)

func runInit(e *env) int {
	fs := newFlags(e, "init", "[-o FILE|-] [--hostname NAME] [--sshd-config FILE] [--asterisk-dir DIR] [--force]")
	out := fs.String("o", policy.DefaultPath, "write the policy to `file` (- for stdout)")
	hostname := fs.String("hostname", "", "the secret `hostname` your phones use to reach the server")
	sshdConfig := fs.String("sshd-config", initSSHDConfig, "sshd configuration `file` to read the SSH ports from")
	asteriskDir := fs.String("asterisk-dir", initAsteriskDir, "Asterisk's configuration `dir`ectory: logger.conf and asterisk.conf say where the logs guard reads are; given explicitly, the SIP transports, RTP range, IAX2 and trunks are read from it too (FreePBX's included)")
	force := fs.Bool("force", false, "overwrite an existing policy file")
	if code, ok := parseFlags(fs, e.args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sipwall init: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var notes []string
	v := initValues{Hostname: *hostname, IPv6: hostFacts().IPv6}

	// SSH: the ports sshd listens on, read as the audit reads them, and
	// the port of the session init runs in.
	ports, err := audit.SSHDPorts(*sshdConfig)
	switch {
	case err != nil && set["sshd-config"]:
		fmt.Fprintf(e.stderr, "sipwall init: --sshd-config %s: %v\n", *sshdConfig, unwrapPath(err))
		return exitUsage
	case err != nil:
		notes = append(notes, fmt.Sprintf("cannot read %s (%v): the SSH ports are not taken from sshd's configuration; give --sshd-config FILE, and check ssh.ports before applying", *sshdConfig, unwrapPath(err)))
	}
	v.SSHPorts = ports
	if p := sshServerPort(os.Getenv("SSH_CONNECTION")); p != 0 && !slices.Contains(v.SSHPorts, p) {
		v.SSHPorts = append(v.SSHPorts, p)
	}
	if len(v.SSHPorts) == 0 {
		v.SSHPorts = []int{22}
		notes = append(notes, "SSH port 22 assumed (sshd's default)")
	}
	v.Interfaces = publicInterfaces("/proc/net/route")

	// Lint-clean from the start: no trap on an SSH port, no scanner
	// signature that matches a real phone.
	def := policy.Default()
	for _, t := range def.Traps.Ports {
		if slices.Contains(v.SSHPorts, t.Port) {
			v.UntrappedPorts = append(v.UntrappedPorts, t.Port)
		}
	}
	for _, sig := range def.SIP.Scanners.Signatures {
		if ua := matchesPhone(sig); ua != "" {
			v.DroppedSignatures = append(v.DroppedSignatures, fmt.Sprintf("%s, which also matches the real phone %q", sig.Match, ua))
			continue
		}
		v.Signatures = append(v.Signatures, signatureYAML(sig))
	}

	// Guard: Asterisk's logs, found from its configuration and log directory.
	v.GuardLogs, v.GuardNote = detectAsteriskLogs(*asteriskDir)
	v.GuardExample = commentedExample(len(v.GuardLogs) > 0)
	if set["asterisk-dir"] {
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
	} else {
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
		logs := "none found"
		if len(v.GuardLogs) > 0 {
			logs = strings.Join(v.GuardLogs, ", ")
		}
		fmt.Fprintf(e.stderr, "wrote %s (SSH ports %v, interfaces %v, guard logs: %s)\n", *out, v.SSHPorts, v.Interfaces, logs)
	}
	for _, n := range notes {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	if v.GuardNote != "" {
		fmt.Fprintf(e.stderr, "note: %s\n", v.GuardNote)
	}
	if v.Hostname == "" {
		fmt.Fprintln(e.stderr, "note: no --hostname given: SIP is open to everyone but scanners (mode: open). Give your phones a secret hostname and switch to mode: hostname.")
	}
	return exitOK
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type initValues struct {
	Hostname   string
	SSHPorts   []int
	Interfaces []string
	IPv6       bool
	// UntrappedPorts are default trap ports sshd listens on.
	UntrappedPorts []int
	// Signatures are the default scanner signatures, as YAML, without
	// DroppedSignatures, which match real phones.
	Signatures, DroppedSignatures []string
	// GuardLogs are the Asterisk logs guard follows; GuardNote says how
	// they were found, or why none was.
	GuardLogs []string
	GuardNote string
	// GuardExample are the guard section's other keys, commented out.
	GuardExample string
	PBX          *pbxValues // from --asterisk-dir
}

// guardExample are the guard section's keys init leaves commented out.
var guardExample = []string{
	`ami: {address: "127.0.0.1:5038", user: sipwall, secret_file: ami.secret}`,
	`findtime: 10m               # maxretry failures within findtime ban a source`,
	`maxretry: 5`,
	`bantime: 1h                 # a first ban; a repeat ban lasts bantime_factor`,
	`bantime_factor: 2           # times longer, up to max_bantime`,
	`max_bantime: 7d`,
	`never_ban: [192.0.2.0/24]   # besides loopback, this host and trusted networks`,
	`inspect: true               # nftables: the knock and signatures, in guard`,
	`admit_registered: true      # admit phones Asterisk reports registered`,
	`metrics: "127.0.0.1:9765"   # Prometheus /metrics and /healthz, or "off"`,
}

// commentedExample returns the example keys commented out, inside the
// guard section or inside its commented-out form.
func commentedExample(inSection bool) string {
	prefix := "#   "
	if inSection {
		prefix = "  # "
	}
	var b strings.Builder
	for _, l := range guardExample {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// matchesPhone returns the real phone or PBX a signature matches, "" if none.
func matchesPhone(s policy.Signature) string {
	for _, ua := range policy.KnownUserAgents {
		if s.IgnoreCase && strings.Contains(strings.ToLower(ua), strings.ToLower(s.Match)) || strings.Contains(ua, s.Match) {
			return ua
		}
	}
	return ""
}

// yamlQuote writes s as a double-quoted YAML string (a JSON string is one).
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func signatureYAML(s policy.Signature) string {
	m := s.Match
	if strings.ContainsAny(m, ":{}[],#&*!|>'\"%@`") {
		m = yamlQuote(m)
	}
	if s.IgnoreCase {
		return "{match: " + m + ", icase: true}"
	}
	return m
}

// detectAsteriskLogs finds the Asterisk log guard should follow: one
// source only, as Asterisk reports a failed login in each of its logs and
// guard would count it twice. In order: a file channel of logger.conf
// with the security level; the security, messages or full file in the log
// directory; the journal of asterisk.service when logger.conf sends to
// syslog. note says what was found, or why nothing was.
func detectAsteriskLogs(asteriskDir string) (logs []string, note string) {
	al, err := audit.ReadAsteriskLogging(asteriskDir)
	if err != nil {
		return nil, fmt.Sprintf("cannot read Asterisk's logger.conf (%v): guard's logs are left commented out in the policy", unwrapPath(err))
	}
	exists := func(path string) bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Mode().IsRegular()
	}
	for _, c := range al.SecurityChannels() {
		if c.IsFile() && exists(c.Path(al.LogDir)) {
			return []string{c.Path(al.LogDir)}, ""
		}
	}
	for _, name := range []string{"security", "security.log", "messages", "messages.log", "full", "full.log"} {
		path := filepath.Join(al.LogDir, name)
		if !exists(path) {
			continue
		}
		if strings.HasPrefix(name, "security") {
			return []string{path}, ""
		}
		return []string{path}, fmt.Sprintf("guard follows %s, which holds failed logins as notices; Asterisk's security channel reports more (`security => security` in logger.conf's [logfiles], then guard.logs: [%s])", path, filepath.Join(al.LogDir, "security"))
	}
	syslog := false
	for _, c := range al.Channels {
		syslog = syslog || c.Syslog() && (c.Writes("security") || c.Writes("notice"))
	}
	if syslog && asteriskUnit() {
		return []string{policy.JournalPrefix + "asterisk.service"}, ""
	}
	return nil, fmt.Sprintf("no Asterisk log found in %s: guard's logs are left commented out in the policy; set guard.logs once Asterisk writes its security log (see `sipwall audit`)", al.LogDir)
}

// asteriskUnit reports whether systemd knows an asterisk.service unit.
func asteriskUnit() bool {
	for _, d := range systemdUnitDirs {
		if _, err := os.Stat(filepath.Join(d, "asterisk.service")); err == nil {
			return true
		}
	}
	return false
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

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

var initTemplate = template.Must(template.New("policy").Funcs(template.FuncMap{"quote": yamlQuote}).Parse(`# sipwall policy: the scheme of "Securing Your Asterisk VoIP Server with
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
  # unknown_budget: {count: 10, per: 1m}  # phones that cannot knock: SIP packets
  #                             # per source before the knock or a registration
  scanners:
    # ban_for: forever
    # The article's scanner signatures.{{range .DroppedSignatures}}
    # Left out: {{.}}; its users would be banned as scanners.{{end}}
    signatures: [{{range $i, $s := .Signatures}}{{if $i}}, {{end}}{{$s}}{{end}}]
  # rate_limits:
  #   register: {count: 20, per: 10s}
  #   invite: {count: 20, per: 5s}

{{if .UntrappedPorts}}traps:
  # ban_for: 10m
  # Merged into the defaults (21 drop; 22, 23, 25, 1433, 3128, 3306, 3389,
  # 4899, 5900 ban; 80, 443 drop): sshd listens on {{range $i, $p := .UntrappedPorts}}{{if $i}}, {{end}}{{$p}}{{end}}, so no trap there.
  ports: { {{- range $i, $p := .UntrappedPorts}}{{if $i}}, {{end}}{{$p}}: none{{end -}} }
{{else}}# traps:
#   ban_for: 10m
#   ports: {25: accept}         # merge into the defaults: 21 drop; 22, 23, 25,
#                               # 1433, 3128, 3306, 3389, 4899, 5900 ban; 80, 443 drop
{{end}}
# spoofing:
#   exempt: [10.0.0.0/8]        # bogon ranges your server or users live in
{{- if and .PBX .PBX.Accept}}

{{.PBX.Accept}}{{end}}

# sipwall guard bans the sources of failed logins it reads in Asterisk's
# logs, like fail2ban; with the nftables backend it also checks the knock and
# the scanner signatures. 'sipwall guard' runs with this section; a flag given
# to it overrides a key.
{{if .GuardLogs}}guard:
  # Asterisk's log, found by 'sipwall init' (one source: Asterisk reports a
  # failed login in each of its logs). A file, or journal:UNIT.
  logs: [{{range $i, $l := .GuardLogs}}{{if $i}}, {{end}}{{quote $l}}{{end}}]
{{else}}# guard:
#   logs: [/var/log/asterisk/security]   # or messages, full, journal:asterisk.service
{{end}}{{.GuardExample}}`))
