package lab

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// toolPackages maps every program the lab runs to the Debian package that
// provides it.
var toolPackages = map[string]string{
	"ip":                "iproute2",
	"kamailio":          "kamailio",
	"svmap":             "sipvicious",
	"svwar":             "sipvicious",
	"svcrack":           "sipvicious",
	"sipsak":            "sipsak",
	"sipp":              "sip-tester",
	"nmap":              "nmap",
	"hping3":            "hping3",
	"nft":               "nftables",
	"iptables-restore":  "iptables",
	"ip6tables-restore": "iptables",
	"iptables-save":     "iptables",
	"ip6tables-save":    "iptables",
	"ipset":             "ipset",
	"conntrack":         "conntrack",
}

// Packages lists the Debian packages the lab needs, sorted.
func Packages() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range toolPackages {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// MissingError lists the programs the lab needs that are not installed,
// with the Debian packages that provide them.
type MissingError struct {
	Tools    []string
	Packages []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("lab: not installed: %s; install them with: apt-get install %s",
		strings.Join(e.Tools, ", "), strings.Join(e.Packages, " "))
}

// checkTools returns a *MissingError naming the missing programs, or nil.
func checkTools(lookPath func(string) (string, error)) error {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var tools []string
	pkgs := map[string]bool{}
	for t, p := range toolPackages {
		if _, err := lookPath(t); err != nil {
			tools = append(tools, t)
			pkgs[p] = true
		}
	}
	if len(tools) == 0 {
		return nil
	}
	sort.Strings(tools)
	e := &MissingError{Tools: tools}
	for p := range pkgs {
		e.Packages = append(e.Packages, p)
	}
	sort.Strings(e.Packages)
	return e
}
