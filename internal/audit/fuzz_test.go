package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// The parsers read files from other machines: whatever the bytes, they
// return problems, never panic or loop.

func FuzzParseAsterisk(f *testing.F) {
	for _, seed := range []string{
		"[general]\nbindaddr=0.0.0.0\n",
		"[a](!)\nk=v\n[b](a,+)\nk => v ; c\n",
		";-- open\n[x]\n--; y=1\n",
		"#include \"*.conf\"\n#exec /bin/true\n[s\n",
		"password=a\\;b\n",
	} {
		f.Add([]byte(seed))
	}
	if b, err := os.ReadFile(filepath.Join(samplesDir, "manager.conf.sample")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(string) ([]byte, error) { return data, nil } // every include is the input again
		glob := func(string) ([]string, error) { return []string{"a.conf", "b.conf"}, nil }
		c := parseAsterisk("test.conf", data, ".", read, glob)
		for _, s := range c.sections() {
			_, _ = s.get("type")
		}
		for _, s := range c.Sections {
			_, _ = parseACL(s.Entries, "permit", "deny")
		}
	})
}

func FuzzParseSSHD(f *testing.F) {
	for _, seed := range []string{
		"Port 22\nPermitRootLogin yes\n",
		"Include sshd_config.d/*.conf\nMatch User x\n\tPasswordAuthentication yes\n",
		"Banner \"/etc/issue\nPort=\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(string) ([]byte, error) { return data, nil }
		glob := func(p string) ([]string, error) { return []string{p}, nil }
		c := parseSSHD("/etc/ssh/sshd_config", data, read, glob)
		_, _ = c.global("port")
	})
}

func FuzzParseProcNet(f *testing.F) {
	f.Add([]byte(procNetHeader + procLine(0, "00000000:0016", "00000000:0000", "0A", 1)))
	f.Add([]byte(procNetHeader + "   0: 0000000000000000FFFF00000A01A8C0:0016 x 07 a b c d e 9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, table := range []string{"tcp", "udp6"} {
			socks, _ := parseProcNet(table, data)
			for _, s := range socks {
				_ = s.String()
			}
		}
	})
}
