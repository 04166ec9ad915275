package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// This file reads sshd_config the way sshd does: keywords are
// case-insensitive, the first value of a keyword wins (Port and
// ListenAddress accumulate), Include expands globs in place (relative paths
// are relative to the sshd_config directory, /etc/ssh), and the lines after
// a Match apply only to the connections it matches, up to the next Match or
// the end of the file that holds it.

// sshdSetting is one keyword line.
type sshdSetting struct {
	Key  string // lower case
	Word string // the keyword as written
	Args []string
	File string
	Line int
	// Match is the criteria of the Match block that holds the line, "" for
	// a global line.
	Match string
}

func (s sshdSetting) text() string { return s.Word + " " + strings.Join(s.Args, " ") }

// sshdConfig is a parsed sshd configuration with its includes.
type sshdConfig struct {
	Settings []sshdSetting
	Problems []astProblem
}

// maxSSHDIncludeDepth is sshd's own limit on nested Include.
const maxSSHDIncludeDepth = 16

type sshdLoader struct {
	sshDir  string // directory of the main file: what /etc/ssh is on that host
	sysRoot string // prefix that maps absolute paths onto a copied tree
	read    func(string) ([]byte, error)
	glob    func(string) ([]string, error)
	cfg     *sshdConfig
	// open holds the files being parsed, to refuse an Include loop;
	// budget bounds the files read in all.
	open   map[string]bool
	budget int
}

// maxIncludedFiles bounds the files one configuration may include in all.
const maxIncludedFiles = 256

// parseSSHD parses the sshd configuration at path (contents data).
func parseSSHD(path string, data []byte, read func(string) ([]byte, error), glob func(string) ([]string, error)) *sshdConfig {
	l := &sshdLoader{sshDir: filepath.Dir(path), read: read, glob: glob, cfg: &sshdConfig{},
		open: map[string]bool{path: true}, budget: maxIncludedFiles}
	if root, ok := strings.CutSuffix(filepath.ToSlash(path), "/etc/ssh/sshd_config"); ok {
		l.sysRoot = filepath.FromSlash(root)
	}
	l.parse(path, data, "", 0)
	return l.cfg
}

func (l *sshdLoader) problem(file string, line int, format string, args ...any) {
	l.cfg.Problems = append(l.cfg.Problems, astProblem{File: file, Line: line, Kind: "syntax", Msg: fmt.Sprintf(format, args...)})
}

// resolve maps an Include pattern onto the audited tree.
func (l *sshdLoader) resolve(pattern string) string {
	switch {
	case !filepath.IsAbs(pattern):
		return filepath.Join(l.sshDir, pattern)
	case strings.HasPrefix(pattern, "/etc/ssh/"):
		return filepath.Join(l.sshDir, strings.TrimPrefix(pattern, "/etc/ssh/"))
	default:
		return filepath.Join(l.sysRoot, pattern)
	}
}

func (l *sshdLoader) parse(file string, data []byte, match string, depth int) {
	for n, raw := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		words, err := sshdWords(raw)
		if err != nil {
			l.problem(file, lineNo, "%v", err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		key := strings.ToLower(words[0])
		args := words[1:]
		switch key {
		case "match":
			if len(args) == 0 {
				l.problem(file, lineNo, "Match without criteria")
				continue
			}
			match = strings.Join(args, " ")
			if strings.EqualFold(match, "all") {
				match = ""
			}
			continue
		case "include":
			if len(args) == 0 {
				l.problem(file, lineNo, "Include without a file name")
				continue
			}
			if depth >= maxSSHDIncludeDepth {
				l.problem(file, lineNo, "Include nested deeper than %d", maxSSHDIncludeDepth)
				continue
			}
			for _, pat := range args {
				paths, err := l.glob(l.resolve(pat))
				if err != nil {
					l.problem(file, lineNo, "Include %s: %v", pat, err)
					continue
				}
				for _, p := range paths {
					if l.open[p] {
						l.problem(file, lineNo, "Include %s: %s includes itself", pat, p)
						continue
					}
					if l.budget--; l.budget < 0 {
						l.problem(file, lineNo, "Include %s: more than %d included files", pat, maxIncludedFiles)
						return
					}
					if d, err := l.read(p); err == nil {
						// A Match inside the included file ends with it.
						l.open[p] = true
						l.parse(p, d, match, depth+1)
						delete(l.open, p)
					}
				}
			}
			continue
		}
		if len(args) == 0 {
			l.problem(file, lineNo, "%s has no value", words[0])
			continue
		}
		l.cfg.Settings = append(l.cfg.Settings, sshdSetting{Key: key, Word: words[0], Args: args, File: file, Line: lineNo, Match: match})
	}
}

// sshdWords splits a line into words: the keyword may be followed by "=",
// double quotes group words, and a word starting with # begins a comment.
func sshdWords(line string) ([]string, error) {
	var words []string
	s := strings.TrimSpace(line)
	first := true
	for s != "" {
		if s[0] == '#' {
			break
		}
		var w string
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", line)
			}
			w, s = s[1:end+1], s[end+2:]
		} else {
			end := strings.IndexAny(s, " \t")
			if first {
				if eq := strings.IndexByte(s, '='); eq >= 0 && (end < 0 || eq < end) {
					end = eq
				}
			}
			if end < 0 {
				end = len(s)
			}
			w, s = s[:end], s[end:]
		}
		words = append(words, w)
		s = strings.TrimLeft(s, " \t")
		if first && strings.HasPrefix(s, "=") {
			s = strings.TrimLeft(s[1:], " \t")
		}
		first = false
	}
	return words, nil
}

// global returns the first global setting of any of keys (aliases).
func (c *sshdConfig) global(keys ...string) (sshdSetting, bool) {
	for _, s := range c.Settings {
		if s.Match == "" && containsFold(keys, s.Key) {
			return s, true
		}
	}
	return sshdSetting{}, false
}

// overridden returns the later global settings of keys whose value differs
// from the winning one: lines that do nothing because sshd keeps the first.
func (c *sshdConfig) overridden(win sshdSetting, keys ...string) []sshdSetting {
	var out []sshdSetting
	for _, s := range c.Settings {
		if s.Match == "" && containsFold(keys, s.Key) && (s.File != win.File || s.Line != win.Line) &&
			!strings.EqualFold(strings.Join(s.Args, " "), strings.Join(win.Args, " ")) {
			out = append(out, s)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (a *auditor) checkSSHD(ctx context.Context) {
	path := a.cfg.SSHDConfig
	data, ok := a.readConfig(path)
	if !ok {
		if _, err := a.files.ReadFile(path); isNotExist(err) {
			a.add(Finding{
				Severity: Info, Check: "sshd.not_found", File: path,
				Found: fmt.Sprintf("no sshd configuration at %s", path),
				Why:   "the SSH checks need sshd_config",
				Fix:   "point --sshd-config at the file if sshd runs on this host",
			})
		}
		return
	}
	c := parseSSHD(path, data, a.readInput, a.files.Glob)
	for _, p := range c.Problems {
		a.sshdSyntax(p.File, p.Line, p.Msg)
	}
	pw := a.sshdPasswordAuth(c, path)
	a.sshdPorts(c, path, pw)
	a.sshdRootLogin(c)
	a.sshdMatch(c)
}

func (a *auditor) sshdSyntax(file string, line int, msg string) {
	a.add(Finding{
		Severity: Medium, Check: "sshd.syntax", File: file, Line: line,
		Found: msg,
		Why:   "sshd refuses to start (or to reload) with an invalid configuration; after the next restart SSH may be unreachable",
		Fix:   "correct the line and test with `sshd -t` before reloading",
	})
}

// yesNo reads a yes/no argument; ok is false for anything else.
func yesNo(s sshdSetting) (yes, ok bool) {
	switch strings.ToLower(s.Args[0]) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

// firstValueNote explains which later lines are ignored.
func firstValueNote(c *sshdConfig, win sshdSetting, keys ...string) string {
	ign := c.overridden(win, keys...)
	if len(ign) == 0 {
		return ""
	}
	var where []string
	for _, s := range ign {
		where = append(where, fmt.Sprintf("`%s` at %s:%d", s.text(), s.File, s.Line))
	}
	return "; sshd keeps the first value, so " + strings.Join(where, ", ") + " has no effect"
}

// sshdPasswordAuth checks PasswordAuthentication and reports whether
// passwords are accepted globally.
func (a *auditor) sshdPasswordAuth(c *sshdConfig, path string) bool {
	s, set := c.global("passwordauthentication")
	yes := true
	if set {
		var ok bool
		if yes, ok = yesNo(s); !ok {
			a.sshdSyntax(s.File, s.Line, fmt.Sprintf("PasswordAuthentication %s: expected yes or no", s.Args[0]))
			return true
		}
	}
	if yes {
		f := Finding{
			Severity: Medium, Check: "sshd.password_auth", File: s.File, Line: s.Line,
			Found: "PasswordAuthentication yes" + firstValueNote(c, s, "passwordauthentication"),
			Why:   "SSH is the first port every scanner tries; with passwords allowed, a guessed or reused password is a root shell away",
			Fix:   "install your public key (ssh-copy-id), then put `PasswordAuthentication no` before any Include in sshd_config (or in the first file of sshd_config.d) and reload sshd",
		}
		if !set {
			f.File = path
			f.Found = "PasswordAuthentication is not set and sshd's default is yes"
		}
		a.add(f)
	}
	if !yes {
		if k, ok := c.global("kbdinteractiveauthentication", "challengeresponseauthentication"); ok {
			if on, _ := yesNo(k); on {
				if pam, ok := c.global("usepam"); ok {
					if usePAM, _ := yesNo(pam); usePAM {
						a.add(Finding{
							Severity: Low, Check: "sshd.kbd_interactive", File: k.File, Line: k.Line,
							Found: k.text() + " with UsePAM yes",
							Why:   "PAM can still ask for a password through keyboard-interactive authentication although PasswordAuthentication is no",
							Fix:   "set `KbdInteractiveAuthentication no` unless you use one-time codes",
						})
					}
				}
			}
		}
	}
	if s, ok := c.global("permitemptypasswords"); ok {
		if on, _ := yesNo(s); on {
			a.add(Finding{
				Severity: High, Check: "sshd.empty_passwords", File: s.File, Line: s.Line,
				Found: s.text(),
				Why:   "accounts without a password can log in over SSH",
				Fix:   "set `PermitEmptyPasswords no`",
			})
		}
	}
	return yes
}

// sshdListen is a port sshd listens on and the line that makes it listen
// there (a zero setting: sshd's default, port 22).
type sshdListen struct {
	Port int
	From sshdSetting
}

// listenPorts returns the ports sshd listens on, as sshd decides them from
// the global settings: a ListenAddress with a port listens there; a
// ListenAddress without one, or no ListenAddress at all, listens on every
// Port (22 without any). Port values that are no port number are left out.
func (c *sshdConfig) listenPorts() []sshdListen {
	var ports, out []sshdListen
	listen, bare := false, false
	add := func(list *[]sshdListen, l sshdListen) {
		for _, x := range *list {
			if x.Port == l.Port {
				return
			}
		}
		*list = append(*list, l)
	}
	for _, s := range c.Settings {
		if s.Match != "" {
			continue
		}
		switch s.Key {
		case "port":
			for _, arg := range s.Args {
				if p, err := strconv.Atoi(arg); err == nil && p >= 1 && p <= 65535 {
					add(&ports, sshdListen{p, s})
				}
			}
		case "listenaddress":
			listen = true
			_, p, hasPort := splitBind(s.Args[0])
			if !hasPort {
				bare = true
				continue
			}
			if p >= 1 && p <= 65535 {
				add(&out, sshdListen{p, s})
			}
		}
	}
	if listen && !bare {
		return out
	}
	if len(ports) == 0 {
		ports = []sshdListen{{Port: 22}}
	}
	for _, l := range ports {
		add(&out, l)
	}
	return out
}

// SSHDPorts returns the ports sshd listens on according to the sshd
// configuration at path, its Includes followed and its Match blocks left
// out, read the way the audit reads it. An error means path cannot be read.
func SSHDPorts(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, l := range parseSSHD(path, data, os.ReadFile, filepath.Glob).listenPorts() {
		out = append(out, l.Port)
	}
	return out, nil
}

func (a *auditor) sshdPorts(c *sshdConfig, path string, passwords bool) {
	for _, s := range c.Settings {
		if s.Match != "" || s.Key != "port" {
			continue
		}
		for _, arg := range s.Args {
			if p, err := strconv.Atoi(arg); err != nil || p < 1 || p > 65535 {
				a.sshdSyntax(s.File, s.Line, fmt.Sprintf("Port %s: not a port number", arg))
			}
		}
	}
	var at22 sshdSetting
	listens22 := false
	for _, l := range c.listenPorts() {
		if l.Port == 22 {
			listens22, at22 = true, l.From
			if at22.Key == "" {
				at22.File = path
			}
		}
	}
	if !listens22 {
		return
	}
	sev := Medium
	why := "port 22 draws every SSH brute-force scanner on the Internet; with password logins allowed one of them may get in"
	if !passwords {
		sev = Low
		why = "port 22 draws every SSH brute-force scanner on the Internet: their attempts fill the logs and the conntrack table even though keys-only login stops them"
	}
	found := fmt.Sprintf("sshd listens on port 22 (%s)", at22.text())
	if at22.Key == "" {
		found = "sshd_config sets no Port, so sshd listens on port 22"
	}
	a.add(Finding{
		Severity: sev, Check: "sshd.port22", File: at22.File, Line: at22.Line,
		Found: found,
		Why:   why,
		Fix:   "choose another port (e.g. `Port 2222`), admit it in the sipwall policy, reload sshd and test a new session before closing the current one",
	})
}

func (a *auditor) sshdRootLogin(c *sshdConfig) {
	s, ok := c.global("permitrootlogin")
	if !ok {
		return // the default, prohibit-password, admits keys only
	}
	switch strings.ToLower(s.Args[0]) {
	case "yes":
		a.add(Finding{
			Severity: High, Check: "sshd.permit_root_login", File: s.File, Line: s.Line,
			Found: s.text() + firstValueNote(c, s, "permitrootlogin"),
			Why:   "root may log in with a password: scanners try root first, and a guessed password is the whole machine",
			Fix:   "set `PermitRootLogin prohibit-password` (keys only, the article's without-password) or `no`, before any Include",
		})
	case "no", "prohibit-password", "without-password", "forced-commands-only":
	default:
		a.sshdSyntax(s.File, s.Line, fmt.Sprintf("PermitRootLogin %s: expected yes, prohibit-password, forced-commands-only or no", s.Args[0]))
	}
}

// sshdMatch reports weakening settings inside Match blocks separately:
// they apply only to the connections the block matches.
func (a *auditor) sshdMatch(c *sshdConfig) {
	for _, s := range c.Settings {
		if s.Match == "" {
			continue
		}
		switch s.Key {
		case "passwordauthentication":
			if on, _ := yesNo(s); on {
				a.add(Finding{
					Severity: Low, Check: "sshd.match_password_auth", File: s.File, Line: s.Line,
					Found: fmt.Sprintf("PasswordAuthentication yes inside `Match %s`", s.Match),
					Why:   "connections matching that block may log in with a password; that is safe only if the criteria name trusted networks or users",
					Fix:   "restrict the Match to trusted addresses (Match Address 192.168.1.0/24) or use keys there too",
				})
			}
		case "permitrootlogin":
			if strings.EqualFold(s.Args[0], "yes") {
				a.add(Finding{
					Severity: Medium, Check: "sshd.match_permit_root_login", File: s.File, Line: s.Line,
					Found: fmt.Sprintf("PermitRootLogin yes inside `Match %s`", s.Match),
					Why:   "root may log in with a password from connections matching that block",
					Fix:   "use `PermitRootLogin prohibit-password` in the Match block as well",
				})
			}
		}
	}
}
