package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParsePort parses "5060", "5060-5082" or "5060:5082".
func ParsePort(s string) (Port, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		lo, hi, isRange = strings.Cut(s, ":")
	}
	a, err := parsePortNum(lo)
	if err != nil {
		return Port{}, err
	}
	if !isRange {
		return Port{a, a}, nil
	}
	b, err := parsePortNum(hi)
	if err != nil {
		return Port{}, err
	}
	if b < a {
		return Port{}, fmt.Errorf("port range %s ends before it starts", short(s))
	}
	return Port{a, b}, nil
}

func parsePortNum(s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s is not a port (1-65535)", short(s))
	}
	return uint16(n), nil
}

func (p *Port) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a port or a range like 5060-5082, found %s", kindName(n))
	}
	v, err := ParsePort(n.Value)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// String renders the port as "5060" or "5060-5082".
func (p Port) String() string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return fmt.Sprintf("%d-%d", p.From, p.To)
}

// Overlaps reports whether p and q share a port.
func (p Port) Overlaps(q Port) bool { return p.From <= q.To && q.From <= p.To }

// ParsePrefix parses an address ("192.0.2.1") or a network ("10.0.0.0/8").
// A network with host bits set is refused: it is almost always a typo.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s is not an address or network", short(s))
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s is not a network in CIDR notation", short(s))
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set: did you mean %s?", short(s), p.Masked())
	}
	return p, nil
}

func (p *Prefix) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected an address or network, found %s", kindName(n))
	}
	v, err := ParsePrefix(n.Value)
	if err != nil {
		return err
	}
	p.Prefix = v
	return nil
}

// ParseDuration parses Go durations plus days ("7d") and "forever" (0).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "forever", "0", "never":
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n >= 0 && n < 100000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s is not a duration (like 30s, 10m, 1h, 7d or forever)", short(s))
	}
	return d, nil
}

func (d *Duration) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration, found %s", kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	if v != 0 && v < time.Second {
		return fmt.Errorf("%s is shorter than the kernel's 1 s resolution", short(n.Value))
	}
	if v%time.Second != 0 {
		return fmt.Errorf("%s is not a whole number of seconds", short(n.Value))
	}
	d.Duration = v
	return nil
}

// String renders the duration the way the policy file accepts it.
func (d Duration) String() string {
	if d.Duration == 0 {
		return "forever"
	}
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Interval is a period of the daemon's own (not a kernel timeout), so it
// may be shorter than a second: "10ms", "2s".
type Interval struct {
	time.Duration
}

func (d *Interval) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration, found %s", kindName(n))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 10ms or 1s)", n.Value)
	}
	d.Duration = v
	return nil
}

func (d Interval) String() string { return d.Duration.String() }

// Seconds returns the duration in whole seconds.
func (d Duration) Seconds() int { return int(d.Duration / time.Second) }

// decodeNode accepts "sipvicious" or {match: sipvicious, icase: true}.
func (s *Signature) decodeNode(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Signature{Match: n.Value}
	case yaml.MappingNode:
		*s = Signature{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "match":
				s.Match = v.Value
			case "icase":
				b, err := strconv.ParseBool(v.Value)
				if err != nil {
					return fmt.Errorf("icase: expected true or false, found %s", short(v.Value))
				}
				s.IgnoreCase = b
			default:
				return fmt.Errorf("unknown key %s in a signature (known keys: match, icase)", short(k.Value))
			}
		}
	default:
		return fmt.Errorf("expected a string or {match: …, icase: …}, found %s", kindName(n))
	}
	if s.Match == "" {
		return fmt.Errorf("a signature cannot be empty")
	}
	return nil
}

// TrapPorts is a mapping of port to action. In a policy file it is merged
// into the defaults, so "3306: accept" changes one port and keeps the others;
// the action "none" removes a port's trap.
type TrapPorts []TrapPort

func (t *TrapPorts) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("expected a mapping of port: action (ban, drop, accept, none), found %s", kindName(n))
	}
	m := map[int]string{}
	for _, tp := range *t {
		m[tp.Port] = tp.Action
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		port, err := parsePortNum(k.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", k.Line, err)
		}
		switch v.Value {
		case TrapBan, TrapDrop, TrapAccept:
			m[int(port)] = v.Value
		case "none":
			delete(m, int(port))
		default:
			return fmt.Errorf("port %d: action %s is not one of ban, drop, accept, none", port, short(v.Value))
		}
	}
	out := make(TrapPorts, 0, len(m))
	for p, a := range m {
		out = append(out, TrapPort{Port: p, Action: a})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	*t = out
	return nil
}
