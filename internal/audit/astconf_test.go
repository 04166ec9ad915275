package audit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStripAsteriskComments(t *testing.T) {
	for _, tc := range []struct {
		line      string
		level     int
		want      string
		wantLevel int
	}{
		{"key=value ; comment", 0, "key=value ", 0},
		{`password=ab\;cd ; real comment`, 0, "password=ab;cd ", 0},
		{";-- block", 0, "", 1},
		{"still in block", 1, "", 1},
		{"end --; key=1", 1, " key=1", 0},
		{"a=1 ;-- inline --; b", 0, "a=1  b", 0},
		{";--;", 0, "", 1}, // the ; of ";--" does not close it
		{"; ---- not a block", 0, "", 0},
		{";---- not a block either", 0, "", 0},
		{";-- nested ;-- twice --; once --;", 0, "", 0},
		{"-- eventfilter --------", 1, "", 1},
		{"--;", 1, "", 0},
	} {
		got, level := stripAsteriskComments(tc.line, tc.level)
		if got != tc.want || level != tc.wantLevel {
			t.Errorf("stripAsteriskComments(%q, %d) = %q, %d; want %q, %d", tc.line, tc.level, got, level, tc.want, tc.wantLevel)
		}
	}
}

func parseString(t *testing.T, text string, files map[string]string) *astConfig {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files, nil)
	a := &auditor{files: OSFiles{}}
	return parseAsterisk(filepath.Join(dir, "test.conf"), []byte(text), dir, a.readInput, OSFiles{}.Glob)
}

func TestParseAsteriskSections(t *testing.T) {
	c := parseString(t, `
[general]
bindaddr = 0.0.0.0   ; comment
[phone](!)
type => endpoint
context=from-internal
[6001](phone)
auth=6001
context=from-office
[6001](+)
aors=6001
#include "extra/*.conf"
#tryinclude missing.conf
`, map[string]string{
		"extra/a.conf": "[7001](phone)\nauth=7001\n",
		"extra/b.conf": "[7002]\ntype=aor\n",
	})
	if len(c.Problems) != 0 {
		t.Fatalf("problems: %+v", c.Problems)
	}
	var got []string
	for _, s := range c.sections() {
		got = append(got, s.Name)
		for _, e := range s.All {
			got = append(got, "  "+e.Key+"="+e.Value)
		}
	}
	want := []string{
		"general", "  bindaddr=0.0.0.0",
		"6001", "  type=endpoint", "  context=from-internal", "  auth=6001", "  context=from-office", "  aors=6001",
		"7001", "  type=endpoint", "  context=from-internal", "  auth=7001",
		"7002", "  type=aor",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sections (-want +got):\n%s", diff)
	}
	s, _ := c.section("6001")
	if v := s.value("context", ""); v != "from-office" {
		t.Errorf("the last value wins: context = %q", v)
	}
	if e, _ := s.get("auth"); filepath.Base(e.File) != "test.conf" || e.Line != 8 {
		t.Errorf("auth located at %s:%d", e.File, e.Line)
	}
	s, _ = c.section("7001")
	if e, _ := s.get("auth"); filepath.Base(e.File) != "a.conf" || e.Line != 2 {
		t.Errorf("included setting located at %s:%d", e.File, e.Line)
	}
}

func TestParseAsteriskProblems(t *testing.T) {
	c := parseString(t, "#include self.conf\n#include nope.conf\n[a]\nk=v\n", map[string]string{
		"self.conf": "#include self.conf\n[s]\nx=1\n",
	})
	var got []string
	for _, p := range c.Problems {
		got = append(got, filepath.Base(p.File)+":"+p.Kind+":"+p.Msg)
	}
	want := []string{
		"self.conf:syntax:#include self.conf: the file includes itself",
		"test.conf:include:#include nope.conf: no such file",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseAsteriskManagerSampleBlockComments(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(samplesDir, "manager.conf.sample"))
	if err != nil {
		t.Fatal(err)
	}
	c := parseAsterisk("manager.conf", b, ".", func(string) ([]byte, error) { return nil, os.ErrNotExist }, OSFiles{}.Glob)
	if len(c.Problems) != 0 {
		t.Errorf("the manager sample's ;-- --; blocks must parse cleanly: %+v", c.Problems)
	}
	var got []string
	for _, s := range c.sections() {
		for _, e := range s.All {
			got = append(got, s.Name+"."+e.Key+"="+e.Value)
		}
	}
	want := []string{"general.enabled=no", "general.port=5038", "general.bindaddr=0.0.0.0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestACL(t *testing.T) {
	entries := func(kv ...string) []astEntry {
		var out []astEntry
		for i := 0; i < len(kv); i += 2 {
			out = append(out, astEntry{Key: kv[i], Value: kv[i+1], Line: i/2 + 1})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		entries []astEntry
		want    aclShape
	}{
		{"none", nil, aclNone},
		{"permit without deny", entries("permit", "192.168.1.0/24"), aclOpen},
		{"deny one address", entries("deny", "203.0.113.5"), aclOpen},
		{"deny all then lan", entries("deny", "0.0.0.0/0.0.0.0", "permit", "192.168.1.0/255.255.255.0"), aclNarrow},
		{"deny all then public /24", entries("deny", "0.0.0.0/0", "permit", "198.51.100.0/24"), aclNarrow},
		{"deny all then public /16", entries("deny", "0.0.0.0/0", "permit", "198.51.0.0/255.255.0.0"), aclWide},
		{"deny all then permit all", entries("deny", "0.0.0.0/0.0.0.0", "permit", "0.0.0.0/0.0.0.0"), aclOpen},
		{"permit before deny all is overridden", entries("permit", "0.0.0.0/0", "deny", "0.0.0.0/0", "permit", "10.0.0.0/8"), aclNarrow},
		{"negated list", entries("deny", "0.0.0.0/0", "permit", "198.51.100.0/24, !198.51.100.12/32"), aclNarrow},
		{"ipv6 deny all", entries("deny", "::/0", "permit", "2001:db8::/32"), aclWide},
	} {
		rules, probs := parseACL(tc.entries, "permit", "deny")
		if len(probs) != 0 {
			t.Errorf("%s: problems %+v", tc.name, probs)
		}
		if got, _ := judgeACL(rules); got != tc.want {
			t.Errorf("%s: judgeACL = %d, want %d", tc.name, got, tc.want)
		}
	}
	_, probs := parseACL(entries("permit", "10.0.0.0/255.0.255.0", "deny", "example.com"), "permit", "deny")
	if len(probs) != 2 {
		t.Errorf("want 2 problems (non-contiguous mask, host name), got %+v", probs)
	}
}

func TestClassifyBind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bindScope
	}{
		{"", bindAll}, {"0.0.0.0", bindAll}, {"::", bindAll}, {"[::]", bindAll},
		{"127.0.0.1", bindLocal}, {"::1", bindLocal}, {"localhost", bindLocal},
		{"192.168.1.10", bindPrivate}, {"10.1.2.3", bindPrivate}, {"fe80::1", bindPrivate}, {"100.64.0.1", bindPrivate},
		{"203.0.113.10", bindPublic}, {"2001:db8::1", bindPublic},
		{"pbx.example.com", bindUnknown},
	} {
		if got := classifyBind(tc.in); got != tc.want {
			t.Errorf("classifyBind(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		host string
		port int
		has  bool
	}{
		{"0.0.0.0:5060", "0.0.0.0", 5060, true},
		{"0.0.0.0", "0.0.0.0", 0, false},
		{"[::]:5061", "::", 5061, true},
		{"::", "::", 0, false},
		{"[2001:db8::1]", "2001:db8::1", 0, false},
	} {
		h, p, has := splitBind(tc.in)
		if h != tc.host || p != tc.port || has != tc.has {
			t.Errorf("splitBind(%q) = %q, %d, %v", tc.in, h, p, has)
		}
	}
}
