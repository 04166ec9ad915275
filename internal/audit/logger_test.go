package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoggerSecurityChannel: the audit finds whether logger.conf writes
// the security level, on Asterisk's own logger.conf and variations of it.
func TestLoggerSecurityChannel(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join(samplesDir, "logger.conf.sample"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, from, to string
		finding        bool
	}{
		{"as shipped", "", "", true},
		{"security file", ";security.log => security", "security.log => security", false},
		{"every level", ";full.log => notice,warning,error,debug,verbose,dtmf,fax", "full.log => *", false},
		{"verbose level and every level", ";full.log => notice,warning,error,debug,verbose,dtmf,fax", "full.log => verbose(3),*", false},
		{"json formatter", ";full-json.log => [json]debug,verbose,notice,warning,error,dtmf,fax", "full-json.log => [json]security", false},
		{"syslog", ";syslog.local0 => notice,warning,error", "syslog.local0 => notice,security", false},
		{"full without security", ";full.log => notice,warning,error,debug,verbose,dtmf,fax", "full.log => notice,warning,error,debug,verbose,dtmf,fax", true},
		{"commented security", ";security.log => security", "; security.log => security", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			text := string(sample)
			if c.from != "" {
				if !strings.Contains(text, c.from) {
					t.Fatalf("the sample lacks %q", c.from)
				}
				text = strings.Replace(text, c.from, c.to, 1)
			}
			os.WriteFile(filepath.Join(dir, "logger.conf"), []byte(text), 0o644)
			r := runAudit(t, Config{AsteriskDir: dir})
			var got []Finding
			for _, f := range r.Findings {
				if f.Check == "asterisk.logger_security" {
					got = append(got, f)
				}
			}
			if (len(got) > 0) != c.finding {
				t.Fatalf("findings %+v, want one: %v", got, c.finding)
			}
			if c.finding && (got[0].Severity != Low || got[0].Line != 94 || !strings.Contains(got[0].Found, "messages.log (notice,warning,error)") || !strings.Contains(got[0].Fix, "security => security")) {
				t.Errorf("finding %+v", got[0])
			}
		})
	}
}

func TestReadAsteriskLogging(t *testing.T) {
	dir := t.TempDir()
	l, err := ReadAsteriskLogging(dir)
	if err != nil || l.Channels != nil || l.LogDir != DefaultAsteriskLogDir {
		t.Fatalf("without logger.conf: %+v, %v", l, err)
	}
	os.WriteFile(filepath.Join(dir, "asterisk.conf"), []byte("[directories](!)\nastlogdir => /srv/asterisk/log\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "logger.conf"), []byte("[logfiles]\nconsole => notice\nmessages => notice,warning\nsecurity => security\n/var/log/ast-full => *\nsyslog.local0 => security\n"), 0o644)
	l, err = ReadAsteriskLogging(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.LogDir != "/srv/asterisk/log" {
		t.Errorf("log dir %q", l.LogDir)
	}
	var sec []string
	for _, c := range l.SecurityChannels() {
		kind := "file " + c.Path(l.LogDir)
		if !c.IsFile() {
			kind = "syslog " + c.Name
		}
		sec = append(sec, kind)
	}
	if got := strings.Join(sec, "; "); got != "file /srv/asterisk/log/security; file /var/log/ast-full; syslog syslog.local0" {
		t.Errorf("security channels: %s", got)
	}
}
