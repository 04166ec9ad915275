// Package backend is what the rest of sipwall knows of a firewall backend:
// its Name, the registry of the backends built in, and the interface every
// backend provides for the kernel objects it owns: installing, removing and
// fingerprinting sipwall's ruleset, the set store (the lists), the rules'
// counters, conntrack flow deletion, and the names and shapes of its sets.
//
// This package is pure: it runs no tool and opens no socket. The backends
// themselves (internal/backend/iptables, internal/backend/nftables) do, and
// register here; a program that needs them imports them. A new backend is
// one package and one Register call.
package backend

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sipwall/sipwall/internal/ir"
)

// Name names a backend.
type Name string

// The backends sipwall renders for.
const (
	IPTables Name = "iptables"
	NFTables Name = "nftables"
)

// Host says where a backend acts.
type Host struct {
	// NS is the network namespace (a name under /run/netns) in which the
	// tools run and netlink talks; "" is the calling process's own.
	NS string
}

// Memory is what a backend remembers between runs about the host's
// objects that are not its own; it is kept in sipwall's state file.
type Memory struct {
	// BuiltinPolicies are the iptables base chain policies found before
	// sipwall first set them ("4 filter INPUT" → "ACCEPT"); removing
	// sipwall puts them back.
	BuiltinPolicies map[string]string `json:"builtin_policies,omitempty"`
	// CreatedTables are the iptables tables ("4 raw") that did not exist
	// before sipwall: removing sipwall removes them.
	CreatedTables map[string]bool `json:"created_tables,omitempty"`
}

// Ruleset is a rendered ruleset as a backend installs it.
type Ruleset struct {
	// Files are the rendered files, by name (render.Files).
	Files map[string]string
	// Sets are the sets the files declare (Backend.Sets of the IR).
	Sets []Set
}

// Backend is one firewall implementation and everything it does to the
// kernel.
type Backend interface {
	// Name is the backend's registered name.
	Name() Name
	// Install loads rs, carrying the lists over from the sets the kernel
	// holds (old are their shapes, as the previous generation recorded
	// them; nil when unknown). When it fails the kernel keeps what it had.
	Install(ctx context.Context, rs Ruleset, old []Set, m *Memory) error
	// Uninstall removes sipwall's ruleset, keeping the lists.
	Uninstall(ctx context.Context, m *Memory) error
	// Fingerprint lists sipwall's ruleset as the kernel has it, without
	// counters and list contents ("" when none is loaded).
	Fingerprint(ctx context.Context) (string, error)
	// Sets are the kernel sets of rs, named and shaped for this backend.
	Sets(rs *ir.Ruleset) []Set
	// ReadSets returns the shapes of the sets sipwall's ruleset has in the
	// kernel now: for a state file written before shapes were recorded.
	ReadSets(ctx context.Context) ([]Set, error)
	// Store is the set store over sets (the applied generation's).
	Store(sets []Set) SetStore
	// Counters reads the packet counters of sipwall's rules.
	Counters(ctx context.Context) ([]Counter, error)
	// ForgetFlows deletes the conntrack flows from or to any of prefixes
	// and returns how many there were.
	ForgetFlows(ctx context.Context, prefixes []netip.Prefix) (int, error)
	// MaxTimeout is the longest timeout the backend's sets accept.
	MaxTimeout() time.Duration
	// Claim says how strongly the backend claims the host, for
	// choosing a backend when none is given or applied.
	Claim(ctx context.Context) Claim
}

// Claim is a backend's claim on a host: the highest Rank wins.
type Claim struct {
	Rank int
	Why  string
}

// Ranks of a claim, lowest first.
const (
	// ClaimMissing: the backend's tools are not installed.
	ClaimMissing = -2
	// ClaimNone: the backend runs but holds no rules.
	ClaimNone = -1
	// ClaimDefault: the backend to use on a host without rules.
	ClaimDefault = 0
	// ClaimCompat: rules of other tools written through a compatibility
	// layer (iptables-nft).
	ClaimCompat = 1
	// ClaimNative: the host's own rules in the backend's native form.
	ClaimNative = 2
	// ClaimLegacy: the host's rules in a form only this backend reads
	// (iptables-legacy).
	ClaimLegacy = 3
)

// Counter is the packet counter of one rule, or of a base chain's policy,
// in one family.
type Counter struct {
	Family  ir.Family
	Table   string // "raw", "filter"; nftables: the table ("sipwall")
	Chain   string
	Comment string // the rule's comment ("" for none)
	// Verdict is what the rule does with the packets it counts: "drop",
	// "accept", "reject", "jump" (to a chain) or "" (it goes on).
	Verdict string
	// Policy is true for the counter of a base chain's policy.
	Policy bool
	// File is the rendered file the rule comes from (the File of its
	// entry in the renderer's listing: rules.v4, rules.v6, sipwall.nft).
	File string
	// Position is the rule's place in its chain, from 1, in the order the
	// kernel lists the chain.
	Position int
	Packets  uint64
	Bytes    uint64
}

// Opener opens a backend acting on a host.
type Opener func(Host) Backend

var (
	mu       sync.RWMutex
	registry = map[Name]Opener{}
)

// Register adds a backend to the registry; backends call it from init.
func Register(n Name, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[n]; dup {
		panic("backend: " + string(n) + " registered twice")
	}
	registry[n] = open
}

// Registered lists the registered backends, sorted.
func Registered() []Name {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Name, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func list(names []Name) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// Parse validates a backend name (a --backend value) against the registry.
func Parse(s string) (Name, error) {
	mu.RLock()
	_, ok := registry[Name(s)]
	mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("unknown backend %q (%s)", s, list(Registered()))
	}
	return Name(s), nil
}

// Open returns backend n acting on h.
func Open(n Name, h Host) (Backend, error) {
	mu.RLock()
	open, ok := registry[n]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (%s)", n, list(Registered()))
	}
	return open(h), nil
}

// SetDestroyer is a backend whose sets outlive Uninstall (ipsets): it
// removes them, and the lists in them, when sipwall leaves the backend.
type SetDestroyer interface {
	// DestroySets removes sets (and any other set of sipwall's the
	// kernel holds); sets already gone are no error.
	DestroySets(ctx context.Context, sets []Set) error
}
