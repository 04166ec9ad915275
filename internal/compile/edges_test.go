package compile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/render"
)

// yq quotes s as a YAML double-quoted scalar.
func yq(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// longName is a DNS name of exactly n characters.
func longName(n int) string {
	var labels []string
	for n > 0 {
		l := min(n, 63)
		if n-l == 1 { // no empty label after the dot
			l--
		}
		labels = append(labels, strings.Repeat("a", l))
		n -= l
		if n > 0 {
			n-- // the dot
		}
	}
	return strings.Join(labels, ".")
}

// Every edge that check accepts is rendered and loaded by the real tools on
// both backends: quotes, backslashes, shell and nft metacharacters,
// non-ASCII text, the longest texts the kernel takes.
func TestAcceptedEdgesLoadOnBothBackends(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	sigs := []string{`friendly"scanner`, `a\b`, `#;'$` + "`{}" + `@ih,0,8`, "é ü 漢字", strings.Repeat("x", policy.MaxMatch), "  spaces  ", `"`, `\`}
	uas := []string{`Zoiper "5" \ 'x' #;$`, strings.Repeat("U", policy.MaxMatch)}
	host := longName(policy.MaxMatch)
	var sigYAML strings.Builder
	for _, s := range sigs {
		fmt.Fprintf(&sigYAML, "      - {match: %s, icase: true}\n", yq(s))
	}
	policies := map[string]string{
		"hostname": fmt.Sprintf("ssh:\n  ports: [22]\nsip:\n  mode: hostname\n  hostnames: [%s, %s]\n  scanners:\n    signatures:\n%slog:\n  prefix: %s\n",
			yq(host), yq("pbx.example.net."), sigYAML.String(), yq("it's #1; {x} @y `z` é")),
		"user-agent": fmt.Sprintf("ssh:\n  ports: [22]\nsip:\n  mode: user-agent\n  user_agents: [%s, %s]\n  scanners:\n    signatures:\n%s",
			yq(uas[0]), yq(uas[1]), sigYAML.String()),
	}
	for name, text := range policies {
		p, err := policy.Parse(name+".yaml", []byte(text))
		if err != nil {
			t.Fatalf("%s: check refuses an edge it should accept: %v\n%s", name, err, text)
		}
		if fs := p.Lint(policy.HostFacts{}); policy.HasErrors(fs) {
			t.Fatalf("%s: lint errors %v", name, fs)
		}
		for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
			t.Run(name+"/"+string(b), func(t *testing.T) {
				rs, err := compile.Compile(p, compile.Options{Backend: b})
				if err != nil {
					t.Fatal(err)
				}
				files, err := render.Files(rs, b)
				if err != nil {
					t.Fatal(err)
				}
				ns := nstest.New(t, "edge")
				load(t, ns, files)
				if b != backend.IPTables {
					listed := nstest.Run(t, ns, "nft", "list", "table", "inet", "sipwall")
					if p.Log.Prefix != "" && !strings.Contains(listed, p.Log.Prefix) {
						t.Errorf("log prefix %q not in the kernel's listing", p.Log.Prefix)
					}
					return
				}
				saved := nstest.Run(t, ns, "iptables-save", "-t", "raw")
				keys := append(append([]string(nil), sigs...), p.SIP.Hostnames...)
				keys = append(keys, p.SIP.UserAgents...)
				for _, k := range keys {
					if name == "hostname" && contains(uas, k) || name == "user-agent" && contains(p.SIP.Hostnames, k) {
						continue
					}
					// iptables-save shows a pattern with a backslash or
					// non-ASCII bytes as hex.
					want, hexed := "--string "+iptQuote(k), fmt.Sprintf(`--hex-string "|%x|"`, k)
					if !strings.Contains(saved, want) && !strings.Contains(saved, hexed) {
						t.Errorf("the kernel has no string match %s (or %s)", want, hexed)
					}
				}
				if name == "hostname" {
					// iptables-save escapes single quotes too.
					filter := strings.ReplaceAll(nstest.Run(t, ns, "iptables-save", "-t", "filter"), `\'`, `'`)
					if !strings.Contains(filter, "--log-prefix "+iptQuote(p.Log.Prefix)) {
						t.Errorf("log prefix %q not in the kernel:\n%s", p.Log.Prefix, filter)
					}
				}
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// iptQuote is how iptables-save prints an argument.
func iptQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// What the renderers could not carry is refused at check, with the key.
func TestRefusedEdges(t *testing.T) {
	base := "ssh:\n  ports: [22]\nsip:\n  mode: hostname\n  hostnames: [pbx.example.net]\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"newline in a signature", base + "  scanners:\n    signatures:\n      - {match: \"x\\n-A INPUT -j ACCEPT\"}\n", "sip.scanners.signatures[0]: \"x\\n-A INPUT -j ACCEPT\" contains the control character U+000A"},
		{"CR in a signature", base + "  scanners:\n    signatures:\n      - {match: \"x\\ry\"}\n", "control character U+000D"},
		{"NUL in a user-agent", "ssh:\n  ports: [22]\nsip:\n  mode: user-agent\n  user_agents: [\"Zoiper\\0\"]\n", "sip.user_agents[0]"},
		{"hostname over 128", strings.Replace(base, "pbx.example.net", longName(129), 1), "sip.hostnames[0]: \"aaaa"},
		{"quote in log.prefix", base + "log:\n  prefix: \"a\\\"b\"\n", "log.prefix: \"a\\\"b\" contains '\"'"},
		{"backslash in log.prefix", base + "log:\n  prefix: \"a\\\\b\"\n", "log.prefix"},
		{"dollar in log.prefix", base + "log:\n  prefix: \"a$b\"\n", "log.prefix: \"a$b\" contains '$'"},
		{"newline in log.prefix", base + "log:\n  prefix: \"a\\nb\"\n", "log.prefix: \"a\\nb\" contains the control character U+000A"},
		{"tab in a signature", base + "  scanners:\n    signatures:\n      - {match: \"a\\tb\"}\n", "U+0009"},
	} {
		_, err := policy.Parse("p.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// A 10 MB value is named, not echoed whole.
func TestHugeValueNotEchoed(t *testing.T) {
	huge := strings.Repeat("a", 10<<20)
	for _, y := range []string{
		"ssh:\n  ports: [22]\nsip:\n  mode: hostname\n  hostnames: [" + huge + "]\n",
		"ssh:\n  ports: [" + huge + "]\nsip:\n  mode: open\n",
		"interfaces:\n  public: [" + huge + "]\nssh:\n  ports: [22]\nsip:\n  mode: open\n",
		"trusted:\n  all: [" + huge + "]\nssh:\n  ports: [22]\nsip:\n  mode: open\n",
	} {
		_, err := policy.Parse("p.yaml", []byte(y))
		if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), "10485760 bytes") {
			msg := fmt.Sprint(err)
			t.Errorf("error of %d bytes: %.300s", len(msg), msg)
		}
	}
}
