package audit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PBX is what an Asterisk configuration directory says about the PBX on the
// network: the SIP transports it binds (chan_pjsip, chan_sip, WebSocket SIP
// through the HTTP server), its RTP port range, IAX2, and the peers it
// exchanges calls with (trunks). sipwall init writes a policy from it;
// check and audit compare a policy with it.
type PBX struct {
	Dir string
	// Transports are the SIP listeners reachable from outside (a transport
	// bound to loopback is left out).
	Transports []Transport
	// RTP is rtp.conf's rtpstart-rtpend (Asterisk's default 5000-31000
	// when rtp.conf does not set them).
	RTP   PortRange
	RTPAt Where
	// IAX is chan_iax2's UDP listener, nil unless the module is loaded and
	// iax.conf defines peers or users.
	IAX *Transport
	// Trunks are the remote SIP peers named by address, network or host
	// name, one per host and place it is written.
	Trunks []Trunk
	// Problems are lines of the configuration that could not be read.
	Problems []string
	// webSocket says where SIP over WebSocket ("ws", "wss") is configured.
	webSocket map[string]Where
}

// WebRTC reports whether SIP over secure WebSocket (browsers, WebRTC) is
// configured: a WSS transport or an endpoint with webrtc=yes.
func (p *PBX) WebRTC() bool {
	_, ok := p.webSocket["wss"]
	return ok
}

// Where is a place in a configuration file.
type Where struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (w Where) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	return w.File
}

// Transport is one listener of the PBX.
type Transport struct {
	Name     string // the [section], or "general"
	Driver   string // pjsip, chan_sip, http (WebSocket SIP) or iax2
	Protocol string // udp, tcp, tls, ws or wss
	Port     uint16
	Bind     string
	Where
}

// UDP reports whether the transport listens on UDP.
func (t Transport) UDP() bool { return t.Protocol == "udp" }

func (t Transport) String() string {
	return fmt.Sprintf("%s %s transport [%s] on port %d", t.Driver, strings.ToUpper(t.Protocol), t.Name, t.Port)
}

// Trunk is a remote SIP peer the PBX exchanges calls with.
type Trunk struct {
	Name string // the endpoint, registration, aor or peer
	// Host is an address, a network or a DNS name, as written.
	Host string
	// Prefix is Host as a network when it is an address or a network.
	Prefix netip.Prefix
	// Source says where it was found: "identify match", "registration
	// server_uri", "aor contact", "sip.conf host", ...
	Source string
	Where
}

// IsName reports whether the trunk is given by DNS name.
func (t Trunk) IsName() bool { return !t.Prefix.IsValid() }

// ReadPBX reads the Asterisk configuration in dir (pjsip.conf, sip.conf,
// iax.conf, rtp.conf, http.conf, modules.conf and what they #include, as
// FreePBX generates them). files nil reads the operating system's files. It
// fails only when dir cannot be read.
func ReadPBX(dir string, files FileSystem) (*PBX, error) {
	if files == nil {
		files = OSFiles{}
	}
	if _, err := files.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("asterisk configuration: %w", err)
	}
	a := &auditor{cfg: Config{AsteriskDir: dir, Files: files}, files: files}
	ast := &asterisk{a: a, files: map[string]*astConfig{}, reported: map[astProblem]bool{}}
	ast.readModules()
	pbx := ast.pbx()
	for _, f := range a.findings {
		if f.Check == "asterisk.exec" {
			continue
		}
		w := Where{File: f.File, Line: f.Line}
		pbx.Problems = append(pbx.Problems, w.String()+": "+f.Found)
	}
	return pbx, nil
}

// pbx reads the PBX's listeners and peers from the loaded configuration.
func (ast *asterisk) pbx() *PBX {
	p := &PBX{Dir: ast.a.cfg.AsteriskDir, webSocket: map[string]Where{}}
	webSocket := p.webSocket
	if !ast.moduleOff("res_pjsip.so") && !ast.moduleOff("chan_pjsip.so") {
		if c := ast.load("pjsip.conf"); c != nil {
			ast.pjsipPBX(c, p, webSocket)
		}
	}
	if !ast.moduleOff("chan_sip.so") {
		if c := ast.load("sip.conf"); c != nil {
			ast.sipPBX(c, p, webSocket)
		}
	}
	ast.httpPBX(p, webSocket)
	ast.rtpPBX(p)
	ast.iaxPBX(p)
	return p
}

func (ast *asterisk) pjsipPBX(c *astConfig, p *PBX, webSocket map[string]Where) {
	for _, s := range c.sections() {
		switch strings.ToLower(s.value("type", "")) {
		case "transport":
			proto := strings.ToLower(s.value("protocol", "udp"))
			if proto == "ws" || proto == "wss" {
				webSocket[proto] = Where{s.File, s.Line}
				continue
			}
			if proto == "flow" {
				continue
			}
			bind, ok := s.get("bind")
			if !ok {
				continue // Asterisk refuses a transport without bind
			}
			host, port, hasPort := splitBind(bind.Value)
			if !hasPort {
				port = 5060
				if proto == "tls" {
					port = 5061
				}
			}
			if classifyBind(host) == bindLocal || port <= 0 || port > 65535 {
				continue
			}
			p.Transports = append(p.Transports, Transport{Name: s.Name, Driver: "pjsip", Protocol: proto, Port: uint16(port), Bind: bind.Value, Where: Where{bind.File, bind.Line}})
		case "identify":
			ep := s.value("endpoint", s.Name)
			for _, e := range s.all("match") {
				for _, item := range splitList(e.Value) {
					p.addTrunk(ep, stripMatchPort(item), "identify match", e)
				}
			}
		case "registration":
			for _, k := range []string{"server_uri", "outbound_proxy"} {
				if e, ok := s.get(k); ok {
					p.addTrunk(s.Name, uriHost(e.Value), "registration "+k, e)
				}
			}
		case "aor":
			for _, e := range s.all("contact") {
				for _, item := range splitList(e.Value) {
					p.addTrunk(s.Name, uriHost(item), "aor contact", e)
				}
			}
			if e, ok := s.get("outbound_proxy"); ok {
				p.addTrunk(s.Name, uriHost(e.Value), "aor outbound_proxy", e)
			}
		case "endpoint":
			if e, ok := s.get("outbound_proxy"); ok {
				p.addTrunk(s.Name, uriHost(e.Value), "endpoint outbound_proxy", e)
			}
			if astBool(s.value("webrtc", "no")) {
				if _, ok := webSocket["wss"]; !ok {
					webSocket["wss"] = Where{s.File, s.Line}
				}
			}
		}
	}
}

func (ast *asterisk) sipPBX(c *astConfig, p *PBX, webSocket map[string]Where) {
	gen, ok := c.section("general")
	if !ok {
		gen = resolved{astSection: &astSection{Name: "general", File: c.Path}}
	}
	udpPort := 5060
	portAt := Where{gen.File, gen.Line}
	if e, ok := gen.get("bindport"); ok {
		if n, err := strconv.Atoi(e.Value); err == nil {
			udpPort, portAt = n, Where{e.File, e.Line}
		}
	}
	add := func(proto, key, def string, defPort int) {
		e, ok := gen.get(key)
		value := def
		w := portAt
		if ok {
			value, w = e.Value, Where{e.File, e.Line}
		}
		host, port, hasPort := splitBind(value)
		if !hasPort {
			port = defPort
		}
		if classifyBind(host) == bindLocal || port <= 0 || port > 65535 {
			return
		}
		p.Transports = append(p.Transports, Transport{Name: "general", Driver: "chan_sip", Protocol: proto, Port: uint16(port), Bind: value, Where: w})
	}
	bind := gen.value("bindaddr", "0.0.0.0")
	add("udp", "udpbindaddr", bind, udpPort)
	if astBool(gen.value("tcpenable", "no")) {
		add("tcp", "tcpbindaddr", bind, 5060)
	}
	if astBool(gen.value("tlsenable", "no")) {
		add("tls", "tlsbindaddr", bind, 5061)
	}
	for _, e := range gen.all("register") {
		p.addTrunk("register", registerHost(e.Value), "sip.conf register", e)
	}
	if e, ok := gen.get("outboundproxy"); ok {
		p.addTrunk("general", e.Value, "sip.conf outboundproxy", e)
	}
	for _, s := range c.sections() {
		if strings.EqualFold(s.Name, "general") || strings.EqualFold(s.Name, "authentication") {
			continue
		}
		if t := strings.ToLower(s.value("transport", "")); strings.Contains(t, "ws") {
			proto := "ws"
			if strings.Contains(t, "wss") {
				proto = "wss"
			}
			if _, ok := webSocket[proto]; !ok {
				webSocket[proto] = Where{s.File, s.Line}
			}
		}
		typ := strings.ToLower(s.value("type", ""))
		if typ != "peer" && typ != "friend" {
			continue
		}
		if e, ok := s.get("host"); ok && !strings.EqualFold(e.Value, "dynamic") {
			p.addTrunk(s.Name, e.Value, "sip.conf host", e)
		}
		if e, ok := s.get("outboundproxy"); ok {
			p.addTrunk(s.Name, e.Value, "sip.conf outboundproxy", e)
		}
	}
}

// httpPBX adds the HTTP server's ports that carry WebSocket SIP, when a
// WS or WSS transport (or a WebRTC endpoint) uses them.
func (ast *asterisk) httpPBX(p *PBX, webSocket map[string]Where) {
	if len(webSocket) == 0 {
		return
	}
	c := ast.load("http.conf")
	if c == nil {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		return
	}
	if _, ok := webSocket["ws"]; ok && astBool(gen.value("enabled", "no")) {
		if e, ok := gen.get("bindaddr"); ok && classifyBind(e.Value) != bindLocal {
			port := 8088
			if b, ok := gen.get("bindport"); ok {
				if n, err := strconv.Atoi(b.Value); err == nil && n > 0 && n <= 65535 {
					port = n
				}
			}
			p.Transports = append(p.Transports, Transport{Name: "general", Driver: "http", Protocol: "ws", Port: uint16(port), Bind: e.Value, Where: Where{e.File, e.Line}})
		}
	}
	if _, ok := webSocket["wss"]; ok && astBool(gen.value("tlsenable", "no")) {
		host, _, _ := splitBind(gen.value("bindaddr", "0.0.0.0"))
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		value, w := host+":8089", Where{gen.File, gen.Line}
		if e, ok := gen.get("tlsbindaddr"); ok {
			value, w = e.Value, Where{e.File, e.Line}
		}
		host, port, hasPort := splitBind(value)
		if !hasPort {
			port = 8089
		}
		if classifyBind(host) != bindLocal && port > 0 && port <= 65535 {
			p.Transports = append(p.Transports, Transport{Name: "general", Driver: "http", Protocol: "wss", Port: uint16(port), Bind: value, Where: w})
		}
	}
}

// Asterisk's RTP range when rtp.conf does not set one.
const defaultRTPStart, defaultRTPEnd = 5000, 31000

func (ast *asterisk) rtpPBX(p *PBX) {
	p.RTP = PortRange{First: defaultRTPStart, Last: defaultRTPEnd}
	c := ast.load("rtp.conf")
	if c == nil {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		return
	}
	p.RTPAt = Where{gen.File, gen.Line}
	if e, ok := gen.get("rtpstart"); ok {
		if n, err := strconv.Atoi(e.Value); err == nil && n > 0 && n <= 65535 {
			p.RTP.First, p.RTPAt = uint16(n), Where{e.File, e.Line}
		}
	}
	if e, ok := gen.get("rtpend"); ok {
		if n, err := strconv.Atoi(e.Value); err == nil && n > 0 && n <= 65535 {
			p.RTP.Last = uint16(n)
		}
	}
	if p.RTP.Last < p.RTP.First {
		p.RTP.Last = p.RTP.First
	}
}

func (ast *asterisk) iaxPBX(p *PBX) {
	if ast.moduleOff("chan_iax2.so") {
		return
	}
	c := ast.load("iax.conf")
	if c == nil || !configuresDevices(c, []string{"general", "callnumberlimits"}) && !hasIAXPeers(c) {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		gen = resolved{astSection: &astSection{Name: "general", File: c.Path}}
	}
	port := 4569
	w := Where{gen.File, gen.Line}
	if e, ok := gen.get("bindport"); ok {
		if n, err := strconv.Atoi(e.Value); err == nil && n > 0 && n <= 65535 {
			port, w = n, Where{e.File, e.Line}
		}
	}
	bind := gen.value("bindaddr", "0.0.0.0")
	if host, bp, hasPort := splitBind(bind); classifyBind(host) == bindLocal {
		return
	} else if hasPort && bp > 0 && bp <= 65535 {
		port = bp
	}
	p.IAX = &Transport{Name: "general", Driver: "iax2", Protocol: "udp", Port: uint16(port), Bind: bind, Where: w}
}

// hasIAXPeers reports whether iax.conf defines any peer, user or friend
// (a guest without a secret included).
func hasIAXPeers(c *astConfig) bool {
	for _, s := range c.sections() {
		switch strings.ToLower(s.value("type", "")) {
		case "peer", "user", "friend":
			return true
		}
	}
	return false
}

// addTrunk records host (an address, a network or a DNS name) once.
func (p *PBX) addTrunk(name, host, source string, e astEntry) {
	host = strings.TrimSpace(host)
	if host == "" || strings.EqualFold(host, "dynamic") {
		return
	}
	t := Trunk{Name: name, Host: host, Source: source, Where: Where{e.File, e.Line}}
	if pfx, err := parseACLAddress(host); err == nil {
		if pfx.Bits() == 0 {
			return // "any address" is not a peer (the audit reports it)
		}
		t.Prefix = pfx.Masked()
		t.Host = t.Prefix.String()
		if t.Prefix.IsSingleIP() {
			t.Host = t.Prefix.Addr().String()
		}
	} else if !isHostName(host) {
		p.Problems = append(p.Problems, fmt.Sprintf("%s: %s %q is neither an address, a network nor a host name", Where{e.File, e.Line}, source, host))
		return
	} else {
		t.Host = strings.ToLower(strings.TrimSuffix(host, "."))
	}
	if slices.ContainsFunc(p.Trunks, func(o Trunk) bool { return o.Host == t.Host }) {
		return
	}
	p.Trunks = append(p.Trunks, t)
}

// isHostName reports whether s is a DNS name with at least one dot.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// uriHost returns the host of a SIP URI such as
// "sip:user@host:5060;transport=tcp" or "<sips:[2001:db8::1]:5061>".
func uriHost(uri string) string {
	s := strings.TrimSpace(uri)
	s = strings.TrimPrefix(s, "<")
	if i := strings.IndexAny(s, ">;?"); i >= 0 {
		s = s[:i]
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"sips:", "sip:"} {
		if strings.HasPrefix(lower, scheme) {
			s = s[len(scheme):]
			break
		}
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	host, _, _ := splitBind(s)
	return host
}

// registerHost returns the host of a chan_sip register line:
// [peer?][transport://]user[@domain][:secret[:authuser]]@host[:port][/extension][~expiry].
func registerHost(v string) string {
	s := strings.TrimSpace(v)
	if i := strings.Index(s, "?"); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexAny(s, "/~"); i >= 0 {
		s = s[:i]
	}
	host, _, _ := splitBind(s)
	return host
}
