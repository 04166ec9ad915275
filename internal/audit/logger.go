package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultAsteriskLogDir is where Asterisk writes its log files unless
// asterisk.conf's astlogdir says otherwise.
const DefaultAsteriskLogDir = "/var/log/asterisk"

// LogChannel is one channel of logger.conf's [logfiles] section.
type LogChannel struct {
	// Name is the channel as written: a file name (relative to the log
	// directory, or absolute), "console", or "syslog.FACILITY".
	Name string
	// Levels are the levels written, lower case, without a verbose
	// level's argument; "*" means every level.
	Levels []string
	File   string
	Line   int
}

// Writes reports whether the channel writes level.
func (c LogChannel) Writes(level string) bool {
	for _, l := range c.Levels {
		if l == "*" || l == level {
			return true
		}
	}
	return false
}

// Syslog reports whether the channel is a syslog facility (which the
// systemd journal receives).
func (c LogChannel) Syslog() bool { return strings.HasPrefix(strings.ToLower(c.Name), "syslog") }

// IsFile reports whether the channel is a file.
func (c LogChannel) IsFile() bool {
	return !c.Syslog() && !strings.EqualFold(c.Name, "console")
}

// Path is the channel's file in logDir (meaningful when IsFile).
func (c LogChannel) Path(logDir string) string {
	if filepath.IsAbs(c.Name) {
		return c.Name
	}
	return filepath.Join(logDir, c.Name)
}

// AsteriskLogging is what an Asterisk configuration directory says about
// its logs.
type AsteriskLogging struct {
	// LogDir is asterisk.conf's astlogdir, or DefaultAsteriskLogDir.
	LogDir string
	// Channels are logger.conf's [logfiles] channels; nil when
	// logger.conf is missing.
	Channels []LogChannel
	// LoggerConf is the path of logger.conf.
	LoggerConf string
}

// SecurityChannels returns the channels that write the security level.
func (l AsteriskLogging) SecurityChannels() []LogChannel {
	var out []LogChannel
	for _, c := range l.Channels {
		if c.Writes("security") {
			out = append(out, c)
		}
	}
	return out
}

// ReadAsteriskLogging reads logger.conf and asterisk.conf in the Asterisk
// configuration directory dir. A missing logger.conf is no error (Channels
// is nil); an unreadable one is.
func ReadAsteriskLogging(dir string) (AsteriskLogging, error) {
	read := func(path string) (*astConfig, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return parseAsterisk(path, data, dir, os.ReadFile, filepath.Glob), nil
	}
	out := AsteriskLogging{LogDir: DefaultAsteriskLogDir, LoggerConf: filepath.Join(dir, "logger.conf")}
	if c, err := read(filepath.Join(dir, "asterisk.conf")); err == nil {
		// Asterisk's own asterisk.conf marks [directories](!) as a template.
		for _, s := range c.Sections {
			if !strings.EqualFold(s.Name, "directories") {
				continue
			}
			for _, e := range s.Entries {
				if strings.EqualFold(e.Key, "astlogdir") && strings.TrimSpace(e.Value) != "" {
					out.LogDir = strings.TrimSpace(e.Value)
				}
			}
		}
	}
	c, err := read(out.LoggerConf)
	if isNotExist(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Channels = loggerChannels(c)
	return out, nil
}

// loggerChannels returns the channels of a parsed logger.conf.
func loggerChannels(c *astConfig) []LogChannel {
	out := []LogChannel{}
	s, ok := c.section("logfiles")
	if !ok {
		return out
	}
	for _, e := range s.All {
		ch := LogChannel{Name: e.Key, File: e.File, Line: e.Line}
		v := strings.TrimSpace(e.Value)
		if strings.HasPrefix(v, "[") { // a formatter: [json]levels
			if end := strings.IndexByte(v, ']'); end >= 0 {
				v = v[end+1:]
			}
		}
		for _, l := range strings.Split(v, ",") {
			l = strings.ToLower(strings.TrimSpace(l))
			if i := strings.IndexByte(l, '('); i >= 0 {
				l = l[:i]
			}
			if l != "" {
				ch.Levels = append(ch.Levels, l)
			}
		}
		out = append(out, ch)
	}
	return out
}

// checkLogger checks that Asterisk writes its security events somewhere
// `sipwall guard` (or fail2ban) can read them: a file or syslog channel
// with the security level.
func (ast *asterisk) checkLogger() {
	a := ast.a
	c := ast.load("logger.conf")
	path := a.astPath("logger.conf")
	if c == nil {
		if _, err := a.files.ReadFile(path); !isNotExist(err) {
			return // unreadable: reported by load
		}
		a.add(Finding{
			Severity: Low, Check: "asterisk.logger_security", File: path,
			Found: "no logger.conf: Asterisk writes no security log",
			Why:   "failed logins and other security events are written only by a logger channel with the security level; without one, `sipwall guard` and fail2ban see fewer attacks, and later",
			Fix:   "create logger.conf with `[logfiles]` and `security => security`, run `asterisk -rx 'logger reload'` and add /var/log/asterisk/security to the policy's guard.logs",
		})
		return
	}
	channels := loggerChannels(c)
	for _, ch := range channels {
		if ch.Writes("security") {
			return
		}
	}
	where, line := path, 0
	if s, ok := c.section("logfiles"); ok {
		where, line = s.File, s.Line
	}
	var names []string
	for _, ch := range channels {
		names = append(names, fmt.Sprintf("%s (%s)", ch.Name, strings.Join(ch.Levels, ",")))
	}
	found := "logger.conf writes no channel with the security level"
	if len(names) > 0 {
		found += ": its channels are " + strings.Join(names, ", ")
	}
	a.add(Finding{
		Severity: Low, Check: "asterisk.logger_security", File: where, Line: line,
		Found: found,
		Why:   "failed logins and other security events are written only by a logger channel with the security level; without one, `sipwall guard` and fail2ban see fewer attacks, and later",
		Fix:   "add `security => security` under [logfiles], run `asterisk -rx 'logger reload'` and add /var/log/asterisk/security to the policy's guard.logs",
	})
}
