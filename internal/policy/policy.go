// Package policy is sipwall's policy file: the YAML model, the defaults taken
// from the article "Securing Your Asterisk VoIP Server with IPTables", a strict
// loader whose errors name the file, line and key, and validation.
//
// An empty policy plus an SSH port and a secret hostname gives the article's
// protection; every value the article hard-codes is a field here.
package policy

import (
	"net/netip"
	"time"
)

// Admission modes for SIP (the article's scheme and its relaxed variants).
const (
	ModeHostname     = "hostname"      // admitted once a SIP packet carries a secret hostname
	ModeUserAgent    = "user-agent"    // admitted by a user-agent allow-list
	ModeOpen         = "open"          // everyone, minus scanners (the article's Option 2)
	ModeScannersOnly = "scanners-only" // only the scanner protection, in front of another firewall (Option 1)
)

// Trap port actions.
const (
	TrapBan    = "ban"    // ban the source from every port for Traps.BanFor
	TrapDrop   = "drop"   // drop silently
	TrapAccept = "accept" // a service really runs there (mail, FTP, MySQL)
)

// Policy is the whole policy file.
type Policy struct {
	Interfaces Interfaces  `yaml:"interfaces"`
	Defaults   Defaults    `yaml:"defaults"`
	DHCP       bool        `yaml:"dhcp"`
	IPv6       bool        `yaml:"ipv6"`
	SSH        SSH         `yaml:"ssh"`
	Trusted    Trusted     `yaml:"trusted"`
	ICMP       ICMP        `yaml:"icmp"`
	Spoofing   Spoofing    `yaml:"spoofing"`
	Traps      Traps       `yaml:"traps"`
	SIP        SIP         `yaml:"sip"`
	Lists      Lists       `yaml:"lists"`
	Log        Log         `yaml:"log"`
	Extra      ExtraAccept `yaml:"accept"`
	Guard      Guard       `yaml:"guard"`
	CrowdSec   CrowdSec    `yaml:"crowdsec"`
	Feeds      []Feed      `yaml:"feeds"`

	// Source is where the policy was read from ("" for the embedded default).
	Source string `yaml:"-"`
	// pos maps a key path ("sip.hostnames") to its line in Source.
	pos map[string]int
	// flags maps a key path to the command-line flag that set its value
	// (see SetByFlag).
	flags map[string]string
}

// Interfaces names the host's interfaces.
type Interfaces struct {
	// Public interfaces, iptables-style names ("eth+" matches eth0, eth1…).
	Public []string `yaml:"public"`
}

// Defaults are the base chain policies.
type Defaults struct {
	Input   string `yaml:"input"`
	Forward string `yaml:"forward"`
	Output  string `yaml:"output"`
}

// SSH is the SSH service to keep reachable.
type SSH struct {
	Ports []Port `yaml:"ports"`
}

// Trusted sources.
type Trusted struct {
	// All: everything is accepted from these networks.
	All []Prefix `yaml:"all"`
	// SIP: only the SIP and RTP ports are accepted from these networks.
	SIP []Prefix `yaml:"sip"`
	// Hosts with dynamic addresses, by DNS name, resolved when compiling.
	Hosts []TrustedHost `yaml:"hosts"`
}

// TrustedHost is a host with a dynamic IP given by DNS name (the article's
// Travelin' Man case).
type TrustedHost struct {
	Name   string `yaml:"name"`
	Access string `yaml:"access"` // "all" or "sip"
}

// ICMP controls the ICMP allow-list.
type ICMP struct {
	Types         []int `yaml:"types"`
	DropFragments bool  `yaml:"drop_fragments"`
	// IPv6Types are ICMPv6 types accepted in addition to the ones IPv6 needs
	// (which are always accepted).
	IPv6Types []int `yaml:"ipv6_types"`
}

// Spoofing is the article's IPSPF chain.
type Spoofing struct {
	Bogons []Prefix `yaml:"bogons"`
	// Exempt ranges are removed from Bogons (the server or its users live there).
	Exempt          []Prefix `yaml:"exempt"`
	BadDestinations []Prefix `yaml:"bad_destinations"`
	BadTCPFlags     bool     `yaml:"bad_tcp_flags"`
	SynAckReset     bool     `yaml:"syn_ack_reset"`
	NewWithoutSyn   bool     `yaml:"new_without_syn"`
	EmptyUDP        bool     `yaml:"empty_udp"`
	SynRate         Rate     `yaml:"syn_rate"`
}

// Traps is the article's DPTS chain: ports no legitimate client uses.
type Traps struct {
	Ports  TrapPorts `yaml:"ports"`
	BanFor Duration  `yaml:"ban_for"`
}

// TrapPort is one trap port and what hitting it does.
type TrapPort struct {
	Port   int    `yaml:"port"`
	Action string `yaml:"action"`
}

// SIP is the SIP service and its admission scheme.
type SIP struct {
	Mode       string      `yaml:"mode"`
	Hostnames  []string    `yaml:"hostnames"`
	UserAgents []string    `yaml:"user_agents"`
	UDPPorts   []Port      `yaml:"udp_ports"`
	TCPPorts   []Port      `yaml:"tcp_ports"`
	TLSPorts   []Port      `yaml:"tls_ports"`
	RTPPorts   []Port      `yaml:"rtp_ports"`
	AdmitFor   Duration    `yaml:"admit_for"`
	Scanners   Scanners    `yaml:"scanners"`
	RateLimits MethodRates `yaml:"rate_limits"`
	// Answers bans sources by the failure answers the host sends them.
	Answers Answers `yaml:"answers"`
	// UnknownBudget, in the knock modes, lets a source that has not
	// knocked send Count SIP packets per Per instead of none: a phone
	// that cannot be given the hostname or user-agent registers within
	// it, Asterisk's success admits it (sipwall guard), its failures ban
	// it; beyond it its packets are dropped. Count 0: no budget.
	UnknownBudget Rate `yaml:"unknown_budget"`
}

// Answers bans a remote address that collects too many failure answers
// from the host's SIP ports: a password guesser collects 401/407/403
// after 401/407/403, an extension enumerator 404 after 404, while a phone
// collects one challenge per registration or call. Each class is a token
// bucket per remote address: Count answers per Per, at most Count at once;
// the answer beyond the bucket bans the address from every port for
// BanFor. A class with Count 0 (the default) counts nothing.
type Answers struct {
	// AuthFailures counts 401 and 407 challenges and 403 Forbidden.
	AuthFailures Rate `yaml:"auth_failures"`
	// NotFound counts 404 Not Found and 484 Address Incomplete.
	NotFound Rate `yaml:"not_found"`
	// BanFor is how long the address stays banned.
	BanFor Duration `yaml:"ban_for"`
}

// Enabled reports whether any class of answers is counted.
func (a Answers) Enabled() bool { return a.AuthFailures.Count > 0 || a.NotFound.Count > 0 }

// Scanners are the user-agent (and other) signatures of SIP scanners.
type Scanners struct {
	Signatures []Signature `yaml:"signatures"`
	// BanFor is how long a scanner stays banned; 0 means forever (the article: until reboot).
	BanFor Duration `yaml:"ban_for"`
}

// Signature is a string that marks a SIP packet as a scanner's.
type Signature struct {
	Match      string `yaml:"match"`
	IgnoreCase bool   `yaml:"icase"`
}

// MethodRates limits SIP requests per source, counted on the request line.
type MethodRates struct {
	Register Rate `yaml:"register"`
	Invite   Rate `yaml:"invite"`
}

// Rate is "Count events per Per"; Count 0 disables the limit.
type Rate struct {
	Count int      `yaml:"count"`
	Per   Duration `yaml:"per"`
}

// Lists sizes the dynamic lists (admitted, scanners, trapped, banned).
type Lists struct {
	Capacity int `yaml:"capacity"`
}

// Log controls the logging of dropped packets.
type Log struct {
	Drops  Rate   `yaml:"drops"`
	Prefix string `yaml:"prefix"`
}

// ExtraAccept opens additional services to everyone.
type ExtraAccept struct {
	TCP []Port `yaml:"tcp"`
	UDP []Port `yaml:"udp"`
}

// Guard configures `sipwall guard`: the security events it reads, the
// thresholds that turn failures into bans (like fail2ban's jails, with
// repeat offenders escalated), and the live SIP inspector.
type Guard struct {
	// Logs are Asterisk log files to follow (the security channel, messages,
	// full), or "journal:UNIT" for a systemd unit's journal.
	Logs []string `yaml:"logs"`
	// AMI is the Asterisk Manager Interface to read security events from.
	AMI AMI `yaml:"ami"`
	// FindTime, MaxRetry: MaxRetry failures within FindTime ban a source.
	FindTime Duration `yaml:"findtime"`
	MaxRetry int      `yaml:"maxretry"`
	// BanTime is the first ban's length; each repeat ban is BanTimeFactor
	// times longer, up to MaxBanTime.
	BanTime       Duration `yaml:"bantime"`
	BanTimeFactor int      `yaml:"bantime_factor"`
	MaxBanTime    Duration `yaml:"max_bantime"`
	// NeverBan are sources never banned (besides loopback, the host's own
	// addresses and the trusted networks).
	NeverBan []Prefix `yaml:"never_ban"`
	// IPv6Prefix, when set (16 to 128), counts and bans IPv6 sources per
	// network of that length instead of per address (64: a /64, one
	// host's usual allocation, so an attacker cannot take a fresh address
	// for every few attempts).
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// IgnoreSelf keeps the host's own addresses from being banned.
	IgnoreSelf bool `yaml:"ignore_self"`
	// Inspect runs the live SIP inspector (the nftables backend's knock).
	Inspect bool `yaml:"inspect"`
	// AdmitRegistered admits the sources Asterisk reports registered or
	// authenticated with a password (SuccessfulAuth, ContactStatus,
	// PeerStatus) for the registration's lifetime plus a margin.
	AdmitRegistered bool `yaml:"admit_registered"`
	// Metrics is where Prometheus metrics are served ("off" disables).
	Metrics string `yaml:"metrics"`
	// ResolveEvery re-resolves trusted.hosts; SaveEvery saves the lists.
	ResolveEvery Duration `yaml:"resolve_every"`
	SaveEvery    Duration `yaml:"save_every"`
	// Poll is how often the log files are checked for new lines.
	Poll Interval `yaml:"poll"`
	// MaxLine is the longest log line read, in bytes; longer lines are
	// skipped and counted.
	MaxLine int `yaml:"max_line"`
}

// CrowdSec joins a CrowdSec Local API: guard pulls its decisions into the
// fleet list (bouncer) and, with a machine id, pushes its own bans as
// alerts (watcher). An empty URL leaves CrowdSec out.
type CrowdSec struct {
	// URL is the LAPI, like http://127.0.0.1:8080.
	URL string `yaml:"url"`
	// KeyFile holds the bouncer API key (cscli bouncers add), mode 0600.
	KeyFile string `yaml:"key_file"`
	// PullEvery is the decision stream's interval (default 2s).
	PullEvery Interval `yaml:"pull_every"`
	// MachineID and PasswordFile are the watcher login (cscli machines
	// add); without them guard only pulls.
	MachineID    string `yaml:"machine_id"`
	PasswordFile string `yaml:"password_file"`
	// CAFile verifies an https LAPI; CertFile and CertKeyFile are an
	// optional client certificate.
	CAFile      string `yaml:"ca_file"`
	CertFile    string `yaml:"cert_file"`
	CertKeyFile string `yaml:"cert_key_file"`
	// Scopes (ip, range) and Origins (crowdsec, cscli, CAPI, lists…) filter
	// the decisions pulled; empty takes all.
	Scopes  []string `yaml:"scopes"`
	Origins []string `yaml:"origins"`
}

// Enabled reports whether the policy joins a LAPI.
func (c CrowdSec) Enabled() bool { return c.URL != "" }

// Feed is a blocklist fetched on a schedule into a list of its own, whose
// sources are dropped on every port.
type Feed struct {
	// Name names the list (feed-NAME): lower-case letters, digits and
	// dashes, up to 16.
	Name string `yaml:"name"`
	// URL is http(s)://… or a file.
	URL string `yaml:"url"`
	// Format is plain (one address or network a line: VoIPBL, FireHOL) or
	// apiban (APIBan's JSON API).
	Format string `yaml:"format"`
	// Every is how often it is fetched (default 1h).
	Every Interval `yaml:"every"`
	// Max is the most entries taken (default lists.capacity); a longer
	// list is refused and the previous one kept.
	Max int `yaml:"max"`
	// KeyFile holds APIBan's API key, mode 0600.
	KeyFile string `yaml:"key_file"`
}

// JournalPrefix marks a guard.logs entry that names a systemd unit whose
// journal is followed: "journal:asterisk.service".
const JournalPrefix = "journal:"

// AMI is an Asterisk Manager Interface account.
type AMI struct {
	Address    string `yaml:"address"`
	User       string `yaml:"user"`
	SecretFile string `yaml:"secret_file"`
}

// Port is a port or an inclusive port range ("5060", "5060-5082", "5060:5082").
type Port struct {
	From, To uint16
}

// Prefix is an address or a network in CIDR notation.
type Prefix struct {
	netip.Prefix
}

// Duration is a duration ("10m", "1h", "7d"); "forever" and 0 mean no timeout.
type Duration struct {
	time.Duration
}

// Line returns the line of key path (e.g. "sip.hostnames" or "sip.hostnames[1]")
// in the policy file, or 0 when unknown.
func (p *Policy) Line(path string) int {
	return p.pos[path]
}
