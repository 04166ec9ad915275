package audit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// asterisk holds the parsed files of one Asterisk configuration directory.
type asterisk struct {
	a     *auditor
	files map[string]*astConfig // nil value: file missing or unreadable
	// reported holds the problems already turned into findings.
	reported map[astProblem]bool
	mods     moduleState
}

// moduleState is what modules.conf says about loading.
type moduleState struct {
	known    bool // modules.conf was read
	autoload bool
	autoAt   astEntry
	noload   map[string]astEntry
	load     map[string]astEntry
}

func moduleKey(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".so")
}

// loaded reports whether modules.conf loads module, and the line that does.
// Without modules.conf every module counts as loaded.
func (m moduleState) loaded(module string) (bool, astEntry) {
	k := moduleKey(module)
	if !m.known {
		return true, astEntry{}
	}
	if e, ok := m.load[k]; ok {
		return true, e
	}
	if _, ok := m.noload[k]; ok {
		return false, astEntry{}
	}
	return m.autoload, m.autoAt
}

func (a *auditor) checkAsterisk(ctx context.Context) {
	dir := a.cfg.AsteriskDir
	if _, err := a.files.ReadDir(dir); err != nil {
		if isNotExist(err) {
			a.add(Finding{
				Severity: Info, Check: "asterisk.not_found", File: dir,
				Found: fmt.Sprintf("no Asterisk configuration directory at %s", dir),
				Why:   "the Asterisk checks need modules.conf, manager.conf, pjsip.conf and the other files of that directory",
				Fix:   "point --asterisk-dir at the directory that holds them if Asterisk runs on this host",
			})
		} else {
			a.unreadable(dir, err)
		}
		return
	}
	ast := &asterisk{a: a, files: map[string]*astConfig{}, reported: map[astProblem]bool{}}
	ast.readModules()
	ast.checkModules()
	ast.checkManager()
	ast.checkHTTP()
	ast.checkPJSIP()
	ast.checkSIP()
	ast.checkIAX()
	ast.checkLogger()
	if a.cfg.Exposure != nil {
		for _, f := range ast.pbx().Uncovered(a.cfg.Exposure) {
			a.add(f)
		}
	}
}

// load parses an Asterisk configuration file once and reports its syntax
// problems; it returns nil when the file is missing or unreadable.
func (ast *asterisk) load(name string) *astConfig {
	if c, ok := ast.files[name]; ok {
		return c
	}
	a := ast.a
	path := a.astPath(name)
	data, ok := a.readConfig(path)
	if !ok {
		ast.files[name] = nil
		return nil
	}
	c := parseAsterisk(path, data, a.cfg.AsteriskDir, a.readInput, a.files.Glob)
	ast.files[name] = c
	ast.report(c.Problems)
	return c
}

func (ast *asterisk) report(probs []astProblem) {
	for _, p := range probs {
		if ast.reported[p] {
			continue // a named ACL is read once per section that uses it
		}
		ast.reported[p] = true
		f := Finding{File: p.File, Line: p.Line}
		switch p.Kind {
		case "include":
			f.Severity, f.Check = Medium, "asterisk.include_missing"
			f.Found = p.Msg
			f.Why = "Asterisk refuses a configuration whose #include names a missing file, so the module runs without it"
			f.Fix = "create the file, remove the line, or use #tryinclude for an optional file"
		case "exec":
			f.Severity, f.Check = Info, "asterisk.exec"
			f.Found = p.Msg
			f.Why = "the audit does not run commands, so settings produced by #exec were not checked"
			f.Fix = "audit the command's output separately, or write the settings into the file"
		default:
			f.Severity, f.Check = Medium, "asterisk.syntax"
			f.Found = p.Msg
			f.Why = "Asterisk rejects a configuration file with a syntax error: the module then runs with its defaults or does not load, and the audit checked only what it could parse"
			f.Fix = "correct the line (settings are key=value inside a [section]; comments start with ;)"
		}
		ast.a.add(f)
	}
}

func (ast *asterisk) readModules() {
	c := ast.load("modules.conf")
	ast.mods = moduleState{noload: map[string]astEntry{}, load: map[string]astEntry{}}
	if c == nil {
		return
	}
	ast.mods.known = true
	s, ok := c.section("modules")
	if !ok {
		return
	}
	for _, e := range s.All {
		switch strings.ToLower(e.Key) {
		case "autoload":
			ast.mods.autoload = astBool(e.Value)
			ast.mods.autoAt = e
		case "noload":
			ast.mods.noload[moduleKey(e.Value)] = e
		case "load", "preload", "require", "preload-require":
			ast.mods.load[moduleKey(e.Value)] = e
		}
	}
}

// listenerModule is a module that opens a port of its own.
type listenerModule struct {
	Module, Conf, Proto string
	Port                int
	For                 string
	// global lists the sections of Conf that hold settings, not devices.
	global []string
}

// listenerModules are the modules the article disables when unused.
var listenerModules = []listenerModule{
	{"chan_skinny.so", "skinny.conf", "TCP", 2000, "Cisco SCCP (Skinny) phones", []string{"general"}},
	{"chan_mgcp.so", "mgcp.conf", "UDP", 2727, "MGCP gateways", []string{"general"}},
	{"pbx_dundi.so", "dundi.conf", "UDP", 4520, "DUNDi lookups", []string{"general"}},
	{"chan_unistim.so", "unistim.conf", "UDP", 5000, "Nortel UNISTIM phones", []string{"general"}},
	{"chan_ooh323.so", "ooh323.conf", "TCP", 1720, "H.323 calls", []string{"general"}},
	{"chan_iax2.so", "iax.conf", "UDP", 4569, "IAX2 peers and trunks", []string{"general", "callnumberlimits"}},
}

func (ast *asterisk) checkModules() {
	modPath := ast.a.astPath("modules.conf")
	for _, m := range listenerModules {
		on, at := ast.mods.loaded(m.Module)
		if !on || !ast.mods.known {
			continue
		}
		how := fmt.Sprintf("%s=%s", at.Key, at.Value)
		if strings.EqualFold(at.Key, "autoload") {
			how = "autoload=yes and no `noload => " + m.Module + "` line"
		}
		file, line := at.File, at.Line
		if file == "" {
			file = modPath
		}
		fix := fmt.Sprintf("add `noload => %s` to the [modules] section of modules.conf and restart Asterisk", m.Module)
		if !strings.EqualFold(at.Key, "autoload") {
			fix = fmt.Sprintf("replace `%s => %s` with `noload => %s` in modules.conf and restart Asterisk", at.Key, at.Value, m.Module)
		}
		conf := ast.load(m.Conf)
		switch {
		case conf == nil:
			ast.a.add(Finding{
				Severity: Low, Check: "modules.unused_listener", File: file, Line: line,
				Found: fmt.Sprintf("%s is loaded (%s); %s is absent, so today the module declines to load", m.Module, how, m.Conf),
				Why:   fmt.Sprintf("installing the sample configuration (make samples, a package upgrade) makes it listen on %s %d for %s, a port nothing here uses", m.Proto, m.Port, m.For),
				Fix:   fix,
			})
		case !configuresDevices(conf, m.global):
			ast.a.add(Finding{
				Severity: Medium, Check: "modules.unused_listener", File: file, Line: line,
				Found: fmt.Sprintf("%s is loaded (%s) but %s configures no %s", m.Module, how, m.Conf, m.For),
				Why:   fmt.Sprintf("the module listens on %s %d for nobody; if the firewall is down or misconfigured that port is open to scanners", m.Proto, m.Port),
				Fix:   fix,
			})
		}
	}
}

// configuresDevices reports whether c has a section beyond its global ones
// that holds settings; IAX2 users without a secret (guests) do not count.
func configuresDevices(c *astConfig, global []string) bool {
	for _, s := range c.sections() {
		if slices.ContainsFunc(global, func(g string) bool { return strings.EqualFold(g, s.Name) }) || len(s.All) == 0 {
			continue
		}
		if isIAXGuest(s) {
			continue
		}
		return true
	}
	return false
}

// weakSecrets are sample and vendor-default secrets.
var weakSecrets = map[string]bool{
	"mysecret": true, "secret": true, "password": true, "passw0rd": true, "changeme": true,
	"admin": true, "amp111": true, "amp109": true, "fpbx": true, "asterisk": true, "manager": true,
	"1234": true, "12345": true, "123456": true, "1234567": true, "12345678": true, "123456789": true,
	"markpasswd": true, "secretpass": true, "welcome": true, "qwerty": true, "pass": true,
}

// minSecretLen is the shortest secret the audit does not call weak.
const minSecretLen = 12

// weakSecret explains why secret is weak for the account called user, or
// returns "". The secret itself is shown only when it is a published default.
func weakSecret(secret, user string) string {
	s := strings.TrimSpace(secret)
	switch {
	case weakSecrets[strings.ToLower(s)]:
		return fmt.Sprintf("the secret is the well-known value %q", s)
	case strings.EqualFold(s, user):
		return "the secret equals the account name"
	case len(s) < minSecretLen:
		return fmt.Sprintf("the secret has only %d characters", len(s))
	}
	return ""
}

// namedACLs returns the rules of the acl.conf sections names refers to.
func (ast *asterisk) namedACLs(entries []astEntry) [][]aclRule {
	var out [][]aclRule
	for _, e := range entries {
		for name := range strings.SplitSeq(e.Value, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			c := ast.load("acl.conf")
			if c == nil {
				continue
			}
			for _, s := range c.sections() {
				if s.Name == name {
					rules, probs := parseACL(s.All, "permit", "deny")
					ast.report(probs)
					out = append(out, rules)
				}
			}
		}
	}
	return out
}

// judgeSection combines a section's permit/deny with its named ACLs: an
// address must pass every one of them, so the narrowest decides.
func (ast *asterisk) judgeSection(s resolved) (aclShape, aclRule) {
	rules, probs := parseACL(s.All, "permit", "deny")
	ast.report(probs)
	lists := append([][]aclRule{rules}, ast.namedACLs(s.all("acl"))...)
	return combineACLs(lists)
}

func combineACLs(lists [][]aclRule) (aclShape, aclRule) {
	best, culprit := aclNone, aclRule{}
	for _, l := range lists {
		shape, r := judgeACL(l)
		if shape == aclNone {
			continue
		}
		if best == aclNone || shape > best {
			best, culprit = shape, r
		}
	}
	return best, culprit
}

func describeACL(shape aclShape, r aclRule) string {
	switch shape {
	case aclNone:
		return "has no permit/deny rules"
	case aclOpen:
		if r.Permit && r.Prefix.Bits() == 0 {
			return fmt.Sprintf("permits every address (%s=%s)", r.Entry.Key, r.Entry.Value)
		}
		return "has no deny=0.0.0.0/0.0.0.0 before its permit lines, so every address not denied is admitted"
	case aclWide:
		return fmt.Sprintf("permits the public range %s (%s=%s), wider than needed", r.Prefix, r.Entry.Key, r.Entry.Value)
	}
	return "is narrow"
}

func (ast *asterisk) checkManager() {
	c := ast.load("manager.conf")
	if c == nil {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		gen = resolved{astSection: &astSection{Name: "general", File: c.Path}}
	}
	enabled := astBool(gen.value("enabled", "no"))
	bind := gen.value("bindaddr", "0.0.0.0")
	port := gen.value("port", "5038")
	scope := classifyBind(bind)
	file, line := gen.where("bindaddr")
	if scope.reachable() {
		f := Finding{
			Check: "manager.public_bind", File: file, Line: line,
			Fix: "set `bindaddr = 127.0.0.1` in the [general] section of manager.conf and reach the AMI through SSH or a VPN",
		}
		if enabled {
			f.Severity = High
			f.Found = fmt.Sprintf("the manager interface (AMI) is enabled and bound to %s, port %s", bind, port)
			f.Why = "the AMI can originate calls and run commands; exposed, it is a target for password guessing, and its logins are sent in clear text"
		} else {
			f.Severity = Low
			f.Found = fmt.Sprintf("the manager interface is disabled but bindaddr is %s", bind)
			f.Why = "enabling it later (FreePBX does) exposes TCP " + port + " on every address"
		}
		ast.a.add(f)
	}
	if enabled && astBool(gen.value("tlsenable", "no")) {
		tb := gen.value("tlsbindaddr", bind)
		host, _, _ := splitBind(tb)
		if classifyBind(host).reachable() {
			tf, tl := gen.where("tlsbindaddr")
			ast.a.add(Finding{
				Severity: High, Check: "manager.public_bind", File: tf, Line: tl,
				Found: fmt.Sprintf("AMI over TLS is enabled and bound to %s", tb),
				Why:   "the AMI can originate calls and run commands; TLS protects the password in transit but not against guessing it",
				Fix:   "set `tlsbindaddr = 127.0.0.1:5039` or disable tlsenable",
			})
		}
	}
	for _, s := range c.sections() {
		if strings.EqualFold(s.Name, "general") {
			continue
		}
		if e, ok := s.get("secret"); ok {
			if why := weakSecret(e.Value, s.Name); why != "" {
				sev := Low
				if enabled {
					sev = High
				}
				ast.a.add(Finding{
					Severity: sev, Check: "manager.weak_secret", File: e.File, Line: e.Line,
					Found: fmt.Sprintf("manager user [%s]: %s", s.Name, why),
					Why:   "an AMI login gives control over calls and, with the command or system class, over the host",
					Fix:   fmt.Sprintf("set a random secret of at least %d characters for [%s] (e.g. openssl rand -base64 18) and update the clients that use it", minSecretLen, s.Name),
				})
			}
		}
		if !enabled || scope == bindLocal {
			continue
		}
		if shape, r := ast.judgeSection(s); shape != aclNarrow {
			file, line := s.File, s.Line
			if r.Entry.File != "" {
				file, line = r.Entry.File, r.Entry.Line
			}
			ast.a.add(Finding{
				Severity: Medium, Check: "manager.permit_wide", File: file, Line: line,
				Found: fmt.Sprintf("manager user [%s] %s", s.Name, describeACL(shape, r)),
				Why:   "the AMI is reachable beyond this host, and this login is accepted from addresses that have no business using it",
				Fix:   fmt.Sprintf("in [%s] write `deny = 0.0.0.0/0.0.0.0` followed by `permit = ` the addresses of the AMI clients (e.g. 127.0.0.1/255.255.255.255)", s.Name),
			})
		}
	}
}

func (ast *asterisk) checkHTTP() {
	c := ast.load("http.conf")
	if c == nil {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		return
	}
	pbx := ast.pbx()
	if astBool(gen.value("enabled", "no")) {
		if e, ok := gen.get("bindaddr"); ok && classifyBind(e.Value).reachable() && pbx.webSocket["ws"] != (Where{}) {
			ast.a.add(Finding{
				Severity: Low, Check: "http.webrtc_public", File: e.File, Line: e.Line,
				Found: fmt.Sprintf("Asterisk's HTTP server is bound to %s and carries SIP over WebSocket (WS)", e.Value),
				Why:   "clients must reach it, so it stays public; plain WS sends passwords' digests and calls' metadata in clear text, and the server also answers ARI and the AMI over HTTP when enabled",
				Fix:   "move the clients to WSS (tlsenable, port 8089) and then bind bindaddr to 127.0.0.1; meanwhile set `webenabled = no` in manager.conf and `enabled = no` in ari.conf unless used",
			})
		} else if ok && classifyBind(e.Value).reachable() {
			port := gen.value("bindport", "8088")
			fix := "set `bindaddr = 127.0.0.1` in http.conf (put a reverse proxy in front if browsers need it), or `enabled = no` if unused"
			if _, explicit := gen.get("tlsbindaddr"); pbx.WebRTC() && !explicit {
				fix = "set `bindaddr = 127.0.0.1` and, for WebRTC, `tlsbindaddr = " + e.Value + ":8089` in http.conf (the HTTPS server otherwise follows bindaddr)"
			}
			ast.a.add(Finding{
				Severity: High, Check: "http.public_bind", File: e.File, Line: e.Line,
				Found: fmt.Sprintf("Asterisk's HTTP server is enabled and bound to %s, port %s", e.Value, port),
				Why:   "it serves ARI, AMI over HTTP (when webenabled) and WebSocket SIP; reachable from the Internet it is another door for password guessing and exploits",
				Fix:   fix,
			})
		}
	}
	if astBool(gen.value("tlsenable", "no")) {
		if e, ok := gen.get("tlsbindaddr"); ok {
			host, _, _ := splitBind(e.Value)
			if classifyBind(host).reachable() && ast.pbx().WebRTC() {
				// Browsers reach SIP over WSS here: binding it to
				// 127.0.0.1 would end WebRTC. Keep it, serve less.
				ast.a.add(Finding{
					Severity: Low, Check: "http.webrtc_public", File: e.File, Line: e.Line,
					Found: fmt.Sprintf("Asterisk's HTTPS server is bound to %s and carries WebRTC (SIP over WSS)", e.Value),
					Why:   "browsers must reach it, so it stays public; the same server also answers ARI and the AMI over HTTP when those are enabled",
					Fix:   "keep tlsbindaddr public for WebRTC; set `webenabled = no` in manager.conf and `enabled = no` in ari.conf unless used, and admit the port in the policy (sip.tls_ports)",
				})
			} else if classifyBind(host).reachable() {
				ast.a.add(Finding{
					Severity: High, Check: "http.public_bind", File: e.File, Line: e.Line,
					Found: fmt.Sprintf("Asterisk's HTTPS server is enabled and bound to %s", e.Value),
					Why:   "it serves ARI, AMI over HTTP and secure WebSocket SIP to anyone who can reach it",
					Fix:   "set `tlsbindaddr = 127.0.0.1:8089` in http.conf, or `tlsenable = no` if unused",
				})
			}
		}
	}
}

func (ast *asterisk) moduleOff(module string) bool {
	on, _ := ast.mods.loaded(module)
	return !on
}

func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (ast *asterisk) checkPJSIP() {
	if ast.moduleOff("res_pjsip.so") || ast.moduleOff("chan_pjsip.so") {
		return
	}
	c := ast.load("pjsip.conf")
	if c == nil {
		return
	}
	byType := map[string][]resolved{}
	for _, s := range c.sections() {
		t := strings.ToLower(s.value("type", ""))
		byType[t] = append(byType[t], s)
	}
	for _, t := range byType["transport"] {
		ast.pjsipTransport(t)
	}
	inboundAuth := map[string]bool{}
	identified := map[string]bool{}
	for _, id := range byType["identify"] {
		ep := id.value("endpoint", "")
		identified[ep] = true
		for _, e := range id.all("match") {
			for _, item := range splitList(e.Value) {
				pfx, err := parseACLAddress(stripMatchPort(item))
				if err != nil || pfx.Bits() > 0 {
					continue
				}
				ast.a.add(Finding{
					Severity: High, Check: "pjsip.identify_any", File: e.File, Line: e.Line,
					Found: fmt.Sprintf("identify [%s] matches %s to endpoint %s", id.Name, item, ep),
					Why:   "a request from any address is taken for that endpoint; if it has no inbound auth, anyone can call through it",
					Fix:   fmt.Sprintf("list only the provider's addresses in the match= lines of [%s]", id.Name),
				})
			}
		}
	}
	for _, ep := range byType["endpoint"] {
		if strings.EqualFold(ep.Name, "anonymous") {
			ast.a.add(Finding{
				Severity: High, Check: "pjsip.anonymous_endpoint", File: ep.File, Line: ep.Line,
				Found: fmt.Sprintf("an endpoint named anonymous routes unidentified calls into context %q", ep.value("context", "default")),
				Why:   "every request that matches no other endpoint is accepted without authentication; scanners use this to reach outbound routes",
				Fix:   "remove the [anonymous] endpoint (and `noload => res_pjsip_endpoint_identifier_anonymous.so`), or give it a context that only reaches your own DIDs",
			})
		}
		auths := splitList(ep.value("auth", ""))
		for _, name := range auths {
			inboundAuth[name] = true
		}
		if len(auths) > 0 || strings.EqualFold(ep.Name, "anonymous") {
			continue
		}
		by := strings.ToLower(ep.value("identify_by", "username,ip"))
		if !strings.Contains(by, "username") {
			continue
		}
		file, line := ep.File, ep.Line
		ast.a.add(Finding{
			Severity: High, Check: "pjsip.endpoint_no_auth", File: file, Line: line,
			Found: fmt.Sprintf("endpoint [%s] has no auth= and is identified by the From user (identify_by=%s)", ep.Name, by),
			Why:   fmt.Sprintf("a request whose From user is %q is accepted without a password and enters context %q", ep.Name, ep.value("context", "default")),
			Fix:   fmt.Sprintf("give [%s] an inbound auth=, or for a trunk set `identify_by = ip` and an identify section matching the provider's addresses", ep.Name),
		})
	}
	for _, au := range byType["auth"] {
		if !inboundAuth[au.Name] {
			continue
		}
		if t := strings.ToLower(au.value("auth_type", "userpass")); t != "userpass" && t != "digest" {
			continue
		}
		e, ok := au.get("password")
		if !ok {
			continue
		}
		user := au.value("username", au.Name)
		if why := weakSecret(e.Value, user); why != "" {
			ast.a.add(Finding{
				Severity: High, Check: "pjsip.weak_password", File: e.File, Line: e.Line,
				Found: fmt.Sprintf("auth [%s] (user %s): %s", au.Name, user, why),
				Why:   "SIP scanners try the extension number and common passwords first; a guessed password places calls at your expense",
				Fix:   fmt.Sprintf("set a random password of at least %d characters in [%s] and re-provision the phone", minSecretLen, au.Name),
			})
		}
	}
	ast.pjsipACL(c, byType["acl"], len(inboundAuth) > 0)
	for _, aor := range byType["aor"] {
		e, ok := aor.get("max_contacts")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(e.Value)
		if err != nil {
			ast.report([]astProblem{{File: e.File, Line: e.Line, Kind: "syntax", Msg: fmt.Sprintf("max_contacts=%s is not a number", e.Value)}})
			continue
		}
		if n > maxContacts {
			ast.a.add(Finding{
				Severity: Low, Check: "pjsip.max_contacts", File: e.File, Line: e.Line,
				Found: fmt.Sprintf("aor [%s] accepts %d registrations", aor.Name, n),
				Why:   "a stolen password can register many devices at once, unnoticed beside the real phone",
				Fix:   fmt.Sprintf("set `max_contacts = 1` (one per real device) and `remove_existing = yes` in [%s]", aor.Name),
			})
		}
	}
}

// maxContacts is the largest max_contacts the audit accepts without a finding.
const maxContacts = 3

// stripMatchPort removes the port of an identify match such as
// "192.168.10.0:5061/24".
func stripMatchPort(s string) string {
	addr, mask, hasMask := strings.Cut(s, "/")
	host, _, hasPort := splitBind(addr)
	if hasPort {
		addr = host
	}
	if hasMask {
		return addr + "/" + mask
	}
	return addr
}

func (ast *asterisk) pjsipTransport(t resolved) {
	proto := strings.ToLower(t.value("protocol", "udp"))
	if proto == "ws" || proto == "wss" || proto == "flow" {
		return
	}
	bind, ok := t.get("bind")
	if !ok {
		return
	}
	host, port, hasPort := splitBind(bind.Value)
	if !hasPort {
		port = 5060
		if proto == "tls" {
			port = 5061
		}
	}
	if classifyBind(host) == bindAll {
		ast.a.add(Finding{
			Severity: Low, Check: "pjsip.transport_all_addresses", File: bind.File, Line: bind.Line,
			Found: fmt.Sprintf("transport [%s] (%s) binds %s, port %d on every address", t.Name, strings.ToUpper(proto), bind.Value, port),
			Why:   "it also listens on interfaces the firewall may not cover (IPv6, VPN, containers); binding the address users reach keeps the listener where the rules are",
			Fix:   fmt.Sprintf("set `bind = ADDRESS:%d` in [%s] with the address of the interface your phones and trunks reach", port, t.Name),
		})
	}
	if proto == "tls" {
		if e, ok := t.get("method"); ok {
			switch strings.ToLower(e.Value) {
			case "sslv2", "sslv3", "tlsv1", "tlsv1_1":
				ast.a.add(Finding{
					Severity: Low, Check: "pjsip.tls_method", File: e.File, Line: e.Line,
					Found: fmt.Sprintf("transport [%s] uses method=%s", t.Name, e.Value),
					Why:   "this protocol version is broken and disabled by current clients",
					Fix:   fmt.Sprintf("set `method = tlsv1_2` (or remove the line to use the library's default) in [%s]", t.Name),
				})
			}
		}
	}
}

func (ast *asterisk) pjsipACL(c *astConfig, acls []resolved, haveEndpoints bool) {
	if !haveEndpoints {
		return
	}
	if len(acls) == 0 {
		ast.a.add(Finding{
			Severity: Medium, Check: "pjsip.no_acl", File: c.Path,
			Found: "pjsip.conf has endpoints with passwords but no type=acl section",
			Why:   "every address on the Internet may try passwords against every extension; an ACL limits registration and calls to the networks your users are in",
			Fix:   "add a section `[acl]` with `type = acl`, `deny = 0.0.0.0/0.0.0.0` and `permit = ` your users' networks (or `acl = NAME` from acl.conf); for roaming users rely on sipwall's admitted list instead",
		})
		return
	}
	var lists [][]aclRule
	for _, s := range acls {
		rules, probs := parseACL(s.All, "permit", "deny")
		ast.report(probs)
		lists = append(lists, rules)
		lists = append(lists, ast.namedACLs(s.all("acl"))...)
	}
	shape, r := combineACLs(lists)
	if shape == aclNarrow || shape == aclNone {
		return
	}
	file, line := acls[0].File, acls[0].Line
	if r.Entry.File != "" {
		file, line = r.Entry.File, r.Entry.Line
	}
	ast.a.add(Finding{
		Severity: Medium, Check: "pjsip.acl_wide", File: file, Line: line,
		Found: "the pjsip ACL " + describeACL(shape, r),
		Why:   "registrations and calls are accepted from far more addresses than your users have",
		Fix:   "start the acl section with `deny = 0.0.0.0/0.0.0.0` and permit only your users' networks",
	})
}

func (ast *asterisk) checkSIP() {
	if ast.moduleOff("chan_sip.so") {
		return
	}
	c := ast.load("sip.conf")
	if c == nil {
		return
	}
	gen, ok := c.section("general")
	if !ok {
		gen = resolved{astSection: &astSection{Name: "general", File: c.Path}}
	}
	if v := gen.value("allowguest", "yes"); astBool(v) {
		file, line := gen.where("allowguest")
		found := "allowguest=" + v + " in sip.conf"
		if _, set := gen.get("allowguest"); !set {
			found = "sip.conf does not set allowguest, and chan_sip's default is yes"
		}
		ast.a.add(Finding{
			Severity: High, Check: "sip.allowguest", File: file, Line: line,
			Found: found,
			Why:   fmt.Sprintf("calls from unknown callers are accepted without authentication into context %q (FreePBX: \"Allow SIP Guests\")", gen.value("context", "default")),
			Fix:   "set `allowguest = no` in the [general] section of sip.conf (FreePBX: Settings > SIP Settings > Allow SIP Guests: No)",
		})
	}
	if e, ok := gen.get("alwaysauthreject"); ok && !astBool(e.Value) {
		ast.a.add(Finding{
			Severity: Medium, Check: "sip.alwaysauthreject", File: e.File, Line: e.Line,
			Found: "alwaysauthreject=" + e.Value,
			Why:   "Asterisk answers differently for existing and unknown extensions, so a scanner learns which extensions to attack",
			Fix:   "set `alwaysauthreject = yes` in [general]",
		})
	}
	bind := gen.value("udpbindaddr", gen.value("bindaddr", "0.0.0.0"))
	if host, _, _ := splitBind(bind); classifyBind(host) == bindAll {
		file, line := gen.where("udpbindaddr")
		if _, ok := gen.get("udpbindaddr"); !ok {
			file, line = gen.where("bindaddr")
		}
		ast.a.add(Finding{
			Severity: Low, Check: "sip.bind_all_addresses", File: file, Line: line,
			Found: fmt.Sprintf("chan_sip listens on %s (every address)", bind),
			Why:   "it also listens on interfaces the firewall may not cover (IPv6, VPN, containers)",
			Fix:   "set `udpbindaddr = ADDRESS` (and tcpbindaddr, tlsbindaddr) to the address your phones and trunks reach",
		})
	}
	for _, s := range c.sections() {
		if strings.EqualFold(s.Name, "general") || strings.EqualFold(s.Name, "authentication") {
			continue
		}
		typ := strings.ToLower(s.value("type", ""))
		if typ != "friend" && typ != "user" && typ != "peer" {
			continue
		}
		dynamic := strings.EqualFold(s.value("host", ""), "dynamic")
		inbound := typ != "peer" || dynamic
		if !inbound {
			continue
		}
		ast.sipPeer(s, dynamic)
	}
}

func (ast *asterisk) sipPeer(s resolved, dynamic bool) {
	secret, hasSecret := s.get("secret")
	_, hasMD5 := s.get("md5secret")
	switch {
	case hasSecret:
		if why := weakSecret(secret.Value, s.value("defaultuser", s.Name)); why != "" {
			ast.a.add(Finding{
				Severity: High, Check: "sip.weak_secret", File: secret.File, Line: secret.Line,
				Found: fmt.Sprintf("peer [%s]: %s", s.Name, why),
				Why:   "SIP scanners try the extension number and common passwords first; a guessed password places calls at your expense",
				Fix:   fmt.Sprintf("set a random secret of at least %d characters in [%s] and re-provision the phone", minSecretLen, s.Name),
			})
		}
	case !hasMD5 && dynamic:
		ast.a.add(Finding{
			Severity: High, Check: "sip.no_secret", File: s.File, Line: s.Line,
			Found: fmt.Sprintf("peer [%s] has host=dynamic and no secret", s.Name),
			Why:   "anyone can register as this extension and receive or place its calls",
			Fix:   fmt.Sprintf("set a random `secret` of at least %d characters in [%s]", minSecretLen, s.Name),
		})
	}
	if shape, r := ast.judgeSection(s); shape != aclNarrow {
		check := "sip.peer_acl_wide"
		if shape == aclNone {
			check = "sip.peer_no_acl"
		}
		file, line := s.File, s.Line
		if r.Entry.File != "" {
			file, line = r.Entry.File, r.Entry.Line
		}
		ast.a.add(Finding{
			Severity: Medium, Check: check, File: file, Line: line,
			Found: fmt.Sprintf("peer [%s] %s", s.Name, describeACL(shape, r)),
			Why:   "registrations and calls for this extension are accepted from any address, so its password is open to guessing from the whole Internet",
			Fix:   fmt.Sprintf("add `deny = 0.0.0.0/0.0.0.0` and `permit = ` the network the device is in (e.g. 192.168.1.0/255.255.255.0) to [%s]", s.Name),
		})
	}
	if _, ok := s.get("call-limit"); !ok {
		if _, ok := s.get("busylevel"); !ok {
			ast.a.add(Finding{
				Severity: Low, Check: "sip.no_call_limit", File: s.File, Line: s.Line,
				Found: fmt.Sprintf("peer [%s] has no call-limit", s.Name),
				Why:   "a compromised extension can run as many simultaneous calls as your trunks carry; a limit caps the bill",
				Fix:   fmt.Sprintf("set `call-limit = 2` (the calls one person makes at once) in [%s]", s.Name),
			})
		}
	}
}

// isIAXGuest reports whether an iax.conf section is a user without any
// secret, which Asterisk accepts without authentication.
func isIAXGuest(s resolved) bool {
	typ := strings.ToLower(s.value("type", ""))
	if typ != "user" && typ != "friend" {
		return false
	}
	for _, k := range []string{"secret", "dbsecret", "inkeys"} {
		if v := s.value(k, ""); v != "" {
			return false
		}
	}
	return true
}

func (ast *asterisk) checkIAX() {
	if ast.moduleOff("chan_iax2.so") {
		return
	}
	c := ast.load("iax.conf")
	if c == nil {
		return
	}
	for _, s := range c.sections() {
		if !isIAXGuest(s) {
			continue
		}
		ast.a.add(Finding{
			Severity: Medium, Check: "iax.guest", File: s.File, Line: s.Line,
			Found: fmt.Sprintf("IAX2 user [%s] has no secret and takes calls into context %q", s.Name, s.value("context", "default")),
			Why:   "anyone can place IAX2 calls into that context without authentication; the article says to block anonymous callers",
			Fix:   fmt.Sprintf("remove [%s] from iax.conf, or give it a secret; if IAX2 is unused, `noload => chan_iax2.so`", s.Name),
		})
	}
}
