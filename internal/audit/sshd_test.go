package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSSHDWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"Port 22", []string{"Port", "22"}},
		{"  port=2222", []string{"port", "2222"}},
		{"Port = 2222", []string{"Port", "2222"}},
		{"PasswordAuthentication\tno # trailing comment", []string{"PasswordAuthentication", "no"}},
		{`Banner "/etc/my banner"`, []string{"Banner", "/etc/my banner"}},
		{"# PermitRootLogin yes", nil},
		{"", nil},
		{"Match Address 10.0.0.0/8,192.168.0.0/16 User admin", []string{"Match", "Address", "10.0.0.0/8,192.168.0.0/16", "User", "admin"}},
		{"AuthorizedKeysCommand /bin/x --opt=a=b", []string{"AuthorizedKeysCommand", "/bin/x", "--opt=a=b"}},
	} {
		got, err := sshdWords(tc.line)
		if err != nil {
			t.Errorf("sshdWords(%q): %v", tc.line, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("sshdWords(%q) (-want +got):\n%s", tc.line, diff)
		}
	}
	if _, err := sshdWords(`Banner "/etc/issue`); err == nil {
		t.Error("an unterminated quote must be an error")
	}
}

func TestSSHDFixtures(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{
			// The drop-in included first wins over the main file's later
			// "PasswordAuthentication no"; Match blocks are reported apart.
			name: "insecure",
			want: []string{
				"high sshd.permit_root_login etc/ssh/sshd_config:5",
				"medium sshd.match_permit_root_login etc/ssh/sshd_config:9",
				"medium sshd.password_auth etc/ssh/sshd_config.d/50-cloud-init.conf:1",
				"medium sshd.port22 etc/ssh/sshd_config:4",
				"low sshd.match_password_auth etc/ssh/sshd_config:12",
			},
		},
		{
			// Settings before the Include win; the drop-in's "no" wins over
			// the later "PasswordAuthentication=yes", which is global again
			// because the drop-in's Match ends with the drop-in.
			name: "hardened",
			want: nil,
		},
		{
			name: "default",
			want: []string{
				"medium sshd.password_auth etc/ssh/sshd_config:0",
				"medium sshd.port22 etc/ssh/sshd_config:0",
			},
		},
		{
			name: "broken",
			want: []string{
				"medium sshd.syntax etc/ssh/sshd_config:2",
				"medium sshd.syntax etc/ssh/sshd_config:3",
				"medium sshd.syntax etc/ssh/sshd_config:4",
				"medium sshd.syntax etc/ssh/sshd_config:5",
				"medium sshd.syntax etc/ssh/sshd_config:6",
				"medium sshd.syntax etc/ssh/sshd_config:7",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join("testdata/sshd", tc.name)
			r := runAudit(t, Config{SSHDConfig: filepath.Join(root, "etc/ssh/sshd_config")})
			if diff := cmp.Diff(tc.want, atLeast(r, root, Low)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSSHDFirstValueWinsIsExplained(t *testing.T) {
	r := runAudit(t, Config{SSHDConfig: "testdata/sshd/insecure/etc/ssh/sshd_config"})
	f := find(t, r, "sshd.password_auth", "50-cloud-init.conf:1")
	if !strings.Contains(f.Found, "sshd_config:16") || !strings.Contains(f.Found, "first value") {
		t.Errorf("the finding should name the ignored line sshd_config:16: %q", f.Found)
	}
	m := find(t, r, "sshd.match_password_auth", "sshd_config:12")
	if !strings.Contains(m.Found, "Match User deploy") {
		t.Errorf("the Match finding should quote the criteria: %q", m.Found)
	}
}

func TestSSHDPorts(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"moved", "Port 2222\nPasswordAuthentication no\n", nil},
		{"keys only on 22 is low", "Port 22\nPasswordAuthentication no\n", []string{"low sshd.port22 sshd_config:1"}},
		{"second port 22", "Port 2222\nPort 22\nPasswordAuthentication no\n", []string{"low sshd.port22 sshd_config:2"}},
		{"listen address with own port", "ListenAddress 0.0.0.0:2222\nPasswordAuthentication no\n", nil},
		{"listen address without port", "ListenAddress 0.0.0.0\nPasswordAuthentication no\n", []string{"low sshd.port22 sshd_config:0"}},
		{"listen address port 22", "Port 2222\nListenAddress [::]:22\nPasswordAuthentication no\n", []string{"low sshd.port22 sshd_config:2"}},
		{"port in match is ignored", "Port 2222\nMatch User x\nPort 22\nMatch all\nPasswordAuthentication no\n", nil},
		{"root with password", "Port 2222\nPasswordAuthentication no\nPermitRootLogin yes\n", []string{"high sshd.permit_root_login sshd_config:3"}},
		{"root keys only", "Port 2222\nPasswordAuthentication no\nPermitRootLogin without-password\n", nil},
		{"keyword case", "port 2222\npasswordauthentication NO\npermitrootlogin YES\n", []string{"high sshd.permit_root_login sshd_config:3"}},
		{"empty passwords", "Port 2222\nPasswordAuthentication no\nPermitEmptyPasswords yes\n", []string{"high sshd.empty_passwords sshd_config:3"}},
		{"pam keyboard-interactive", "Port 2222\nPasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n", []string{"low sshd.kbd_interactive sshd_config:3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sshd_config")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runAudit(t, Config{SSHDConfig: path})
			if diff := cmp.Diff(tc.want, atLeast(r, dir, Low)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSSHDIncludeUnreadable(t *testing.T) {
	root := "testdata/sshd/insecure"
	dropIn := filepath.Join(root, "etc/ssh/sshd_config.d/50-cloud-init.conf")
	r := runAudit(t, Config{
		SSHDConfig: filepath.Join(root, "etc/ssh/sshd_config"),
		Files:      failingFiles{fail: map[string]error{dropIn: os.ErrPermission}},
	})
	find(t, r, "input.unreadable", "50-cloud-init.conf:0")
	// Without the drop-in the main file's "PasswordAuthentication no" wins.
	for _, f := range r.Findings {
		if f.Check == "sshd.password_auth" {
			t.Errorf("unexpected %s at %s", f.Check, f.Where())
		}
	}
}

func TestSSHDMissing(t *testing.T) {
	r := runAudit(t, Config{})
	if f := find(t, r, "sshd.not_found", "sshd_config:0"); f.Severity != Info {
		t.Errorf("a missing sshd_config is info, got %s", f.Severity)
	}
}

// TestSSHDListenPorts: the ports sshd listens on, as `sipwall init` reads them
// with the audit's parser: ListenAddress with a port wins over Port,
// Includes are followed, Match blocks do not count.
func TestSSHDListenPorts(t *testing.T) {
	for _, c := range []struct {
		name, config, include string
		want                  []int
	}{
		{"nothing set", "PasswordAuthentication no\n", "", []int{22}},
		{"ports", "Port 2222\nPort 2223\nPort 2222\n", "", []int{2222, 2223}},
		{"listen address with a port", "Port 22\nListenAddress 0.0.0.0:2200\n", "", []int{2200}},
		{"listen addresses with and without", "Port 2222\nListenAddress 0.0.0.0:2200\nListenAddress [::]\n", "", []int{2200, 2222}},
		{"ipv6 listen address with a port", "ListenAddress [2001:db8::1]:2201\n", "", []int{2201}},
		{"bare listen address", "ListenAddress 0.0.0.0\n", "", []int{22}},
		{"include", "Include sshd_config.d/*.conf\n", "Port = 2022\n", []int{2022}},
		{"match", "Port 2222\nMatch Address 10.0.0.0/8\n  Port 22\n", "", []int{2222}},
		{"bad port", "Port ssh\nPort 2222\n", "", []int{2222}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "sshd_config")
			os.WriteFile(file, []byte(c.config), 0o644)
			if c.include != "" {
				os.MkdirAll(filepath.Join(dir, "sshd_config.d"), 0o755)
				os.WriteFile(filepath.Join(dir, "sshd_config.d", "port.conf"), []byte(c.include), 0o644)
			}
			got, err := SSHDPorts(file)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("SSHDPorts = %v, %v; want %v", got, err, c.want)
			}
			// The audit agrees: it reports port 22 exactly when it is listened on.
			r := runAudit(t, Config{SSHDConfig: file})
			port22 := false
			for _, f := range r.Findings {
				port22 = port22 || f.Check == "sshd.port22"
			}
			if port22 != slices.Contains(c.want, 22) {
				t.Errorf("audit reports port 22: %v, ports %v", port22, c.want)
			}
		})
	}
	if _, err := SSHDPorts(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("no error for a missing file")
	}
}
