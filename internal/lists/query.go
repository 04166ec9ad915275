package lists

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/ir"
)

// Listed is an entry as read, with the time it was made.
type Listed struct {
	Entry
	// Since is when the entry was made: the time sipwall wrote with its
	// comment, or, for an entry the kernel added with the set's default
	// timeout, that timeout less what is left (SinceDerived). Zero when
	// unknown.
	Since        time.Time
	SinceDerived bool
	// Until is when the kernel removes it (zero: never).
	Until time.Time
}

// Query selects entries. Its zero value selects every entry.
type Query struct {
	// Lists are the lists to read (none: every list).
	Lists []string
	// Addr selects entries that contain it or lie inside it.
	Addr netip.Prefix
	// Reason selects entries whose comment holds it (any case).
	Reason string
	// Since selects entries made within this long of now (entries whose
	// time is unknown are left out).
	Since time.Duration
}

// Match reports whether l is selected by q at time now.
func (q Query) Match(l *Listed, now time.Time) bool {
	if q.Addr.IsValid() && !Overlaps(l.Prefix, q.Addr) {
		return false
	}
	if q.Reason != "" && !strings.Contains(strings.ToLower(l.Comment), strings.ToLower(q.Reason)) {
		return false
	}
	if q.Since > 0 && (l.Since.IsZero() || l.Since.Before(now.Add(-q.Since))) {
		return false
	}
	return true
}

// Overlaps reports whether a contains b or b contains a (same family).
func Overlaps(a, b netip.Prefix) bool {
	if a.Addr().Is4() != b.Addr().Is4() {
		return false
	}
	if a.Bits() <= b.Bits() {
		return a.Contains(b.Addr())
	}
	return b.Contains(a.Addr())
}

// Find returns the entries q selects, sorted by list, then address.
func (s *Store) Find(ctx context.Context, q Query) ([]Listed, error) {
	if len(q.Lists) == 0 {
		q.Lists = s.lists()
	}
	for _, l := range q.Lists {
		if err := CheckList(l); err != nil {
			return nil, err
		}
	}
	es, err := s.read(ctx, q.Lists...)
	if err != nil {
		return nil, err
	}
	now := s.now()
	timeouts := map[string]time.Duration{}
	for _, set := range s.Sets {
		timeouts[set.List] = s.timeout(set.List)
	}
	out := make([]Listed, 0, len(es)/8+1)
	for _, e := range es {
		l := listed(e, now, timeouts[e.List])
		if q.Match(&l, now) {
			out = append(out, l)
		}
	}
	return out, nil
}

// timeout is list's default timeout (0: none).
func (s *Store) timeout(list string) time.Duration {
	for _, set := range s.Sets {
		if set.List == list && set.Timeout > 0 {
			return set.Timeout
		}
	}
	return 0
}

// listed decodes e's time; timeout is its list's default timeout.
func listed(e Entry, now time.Time, timeout time.Duration) Listed {
	l := Listed{Entry: e}
	l.Comment, l.Since = backend.SplitStamp(e.Comment)
	if e.Remaining > 0 {
		l.Until = now.Add(e.Remaining).Truncate(time.Second)
		if l.Since.IsZero() && l.Comment == "" && timeout >= e.Remaining {
			l.Since = now.Add(e.Remaining - timeout).Truncate(time.Second)
			l.SinceDerived = true
		}
	}
	return l
}

// Reason is a listed entry explained: who put it there, what drops it now
// and how to lift it.
type Reason struct {
	Listed
	// Who says who put the entry in, in words.
	Who string
	// Rule is the applied rule that acts on the list ("" when none is
	// recorded), and Verdict what it does ("drops", "admits to SIP").
	Rule, Verdict string
	// Lift is the command that takes the entry out ("" when nothing
	// lifts it by hand), LiftNote what else to know.
	Lift, LiftNote string
}

// Why explains every entry that holds a (or a network containing it, or,
// for a network, inside it), in every list.
//
// A single address is looked up in the kernel where the backend can
// (backend.Looker), without reading whole lists.
func (s *Store) Why(ctx context.Context, a netip.Prefix) ([]Reason, error) {
	var found []Listed
	if lk, ok := s.Kernel.(backend.Looker); ok && a.IsSingleIP() {
		es, err := lk.Lookup(ctx, s.lists(), a.Addr())
		if err != nil {
			return nil, err
		}
		sortEntries(es)
		now := s.now()
		for _, e := range es {
			found = append(found, listed(e, now, s.timeout(e.List)))
		}
	} else {
		var err error
		if found, err = s.Find(ctx, Query{Addr: a}); err != nil {
			return nil, err
		}
	}
	out := make([]Reason, 0, len(found))
	for _, l := range found {
		r := Reason{Listed: l}
		r.Who, r.Lift, r.LiftNote = who(l)
		r.Rule, r.Verdict = s.ruleFor(l.List)
		out = append(out, r)
	}
	return out, nil
}

// listKind is the kind of the rules that act on each list.
func listKind(list string) ir.Kind {
	switch {
	case list == compile.SetBanned:
		return ir.KindBanned
	case list == compile.SetScanners:
		return ir.KindScannerBanned
	case list == compile.SetTrapped:
		return ir.KindTrapped
	case list == compile.SetFleet:
		return ir.KindFleet
	case strings.HasPrefix(list, compile.FeedPrefix):
		return ir.KindFeed
	case list == compile.SetAdmitted:
		return ir.KindAdmitted
	case list == compile.SetAllowed:
		return ir.KindTrusted
	}
	return ir.KindNone
}

// ruleFor names the first deciding rule of the applied ruleset that acts
// on list.
func (s *Store) ruleFor(list string) (rule, verdict string) {
	k := listKind(list)
	verdict = "drops every packet"
	switch list {
	case compile.SetAdmitted, compile.SetAllowed:
		verdict = "accepts its SIP"
	}
	for _, r := range s.Rules {
		if r.Kind != k || !r.Decides {
			continue
		}
		if k == ir.KindFeed && !strings.Contains(r.Comment, strings.TrimPrefix(list, compile.FeedPrefix)) {
			continue
		}
		where := fmt.Sprintf("%s %s rule %d", r.File, r.Chain, r.Position)
		if r.Table != "" && r.File != "sipwall.nft" {
			where = fmt.Sprintf("%s table %s chain %s rule %d", r.File, r.Table, r.Chain, r.Position)
		}
		if r.Comment != "" {
			where += fmt.Sprintf(" (%q)", r.Comment)
		}
		return where + " [" + k.String() + "]", verdict
	}
	return "", verdict
}

// who says who put l in its list, the command that lifts it, and a note.
func who(l Listed) (who, lift, note string) {
	addr := l.Addr()
	c := l.Comment
	unban := "sipwall unban " + addr
	switch {
	case l.List == compile.SetScanners:
		if sig, ok := compile.SignatureOf(c); ok {
			who = fmt.Sprintf("scanner signature %q: a SIP packet from it carried the signature (guard's inspector or the kernel's string match)", sig)
		} else {
			who = "the ruleset's scanner-signature rule: a SIP packet from it carried a scanner's signature"
		}
		return who, unban, ""
	case l.List == compile.SetTrapped:
		who = "a trap port: it sent a packet to one of the policy's trap ports (traps.ports)"
		if c != "" {
			who += "; " + c
		}
		return who, unban, ""
	case l.List == compile.SetBanned:
		switch {
		case strings.HasPrefix(c, GuardJail):
			who = "guard's jail: " + strings.TrimSpace(strings.TrimPrefix(c, GuardJail)) + " (failed authentications in the PBX's security log)"
			if c == GuardJail {
				who = "guard's jail: failed authentications in the PBX's security log"
			}
		case c != "":
			who = "by hand (sipwall ban), reason: " + c
		case !l.Since.IsZero() && !l.SinceDerived:
			who = "by hand (sipwall ban), no reason given"
		default:
			who = "by hand (sipwall ban) or guard's jail; no reason recorded"
		}
		return who, unban, ""
	case l.List == compile.SetFleet:
		who = "the fleet: a CrowdSec decision pulled by guard"
		if c != "" {
			who += " (" + c + ")"
		}
		lift = "cscli decisions delete --ip " + addr
		if i := strings.LastIndex(c, "decision "); i >= 0 {
			id := strings.TrimSuffix(c[i+len("decision "):], ")")
			if id != "" && !strings.ContainsAny(id, " ") {
				lift = "cscli decisions delete --id " + id
			}
		}
		return who, lift, "on the CrowdSec server; guard takes the entry out at its next pull"
	case strings.HasPrefix(l.List, compile.FeedPrefix):
		feed := strings.TrimPrefix(l.List, compile.FeedPrefix)
		who = "the blocklist feed " + feed + ", fetched by guard"
		if c != "" {
			who += " (" + c + ")"
		}
		return who, "", "a feed's entries are replaced at each fetch: put the address in the policy's trusted section, or drop the feed " + feed + " from the policy, and apply"
	case l.List == compile.SetAdmitted:
		who = "its knock: a SIP request from it carried the server's secret hostname"
		if c != "" {
			who = "guard: " + c + " in the PBX's log"
		}
		return who, "", "it leaves when its admission times out; sipwall ban " + addr + " drops it meanwhile"
	case l.List == compile.SetAllowed:
		switch {
		case strings.HasPrefix(c, GuardTrusted):
			who = "guard: " + c
			return who, "", "resolved from the policy's trusted.hosts: remove the host there and apply"
		case c != "":
			who = "by hand (sipwall allow), reason: " + c
		default:
			who = "by hand (sipwall allow)"
		}
		return who, "sipwall allow --remove " + addr, ""
	}
	return c, "", ""
}

// Comments guard writes, before its own words.
const (
	GuardJail    = "guard jail"
	GuardTrusted = "guard trusted.hosts"
)
