// Package feeds downloads blocklists of SIP attackers on a schedule: plain
// text lists (one address or network a line, # or ; comments: VoIPBL's and
// FireHOL's formats) and APIBan's JSON API, from files or HTTP(S) URLs with
// ETag and If-Modified-Since. Each feed becomes its own list, replaced
// whole in one transaction; a failed or malformed download keeps the
// previous list and says why.
package feeds

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Format is how a feed is written.
type Format string

// Formats.
const (
	Plain  Format = "plain"  // VoIPBL, FireHOL netsets, any list of addresses and networks
	APIBan Format = "apiban" // apiban.org's JSON API, paged by ID
)

// Feed is one blocklist.
type Feed struct {
	Name string
	// URL is http(s)://… or a file path.
	URL    string
	Format Format
	// Every is how often it is fetched.
	Every time.Duration
	// Max is the most entries accepted; a larger list is refused whole.
	Max int
	// Key is APIBan's API key (sent as a bearer token).
	Key string
}

// DefaultMax caps a feed that sets no max.
const DefaultMax = 1 << 20

// MaxBytes caps one download.
const MaxBytes = 256 << 20

// ErrNotModified says the feed has not changed since the last fetch.
var ErrNotModified = errors.New("feeds: not modified")

// LineError is a malformed line of a plain list.
type LineError struct {
	Feed string
	Line int
	Text string
}

func (e *LineError) Error() string {
	t := e.Text
	if len(t) > 60 {
		t = t[:60] + "…"
	}
	return fmt.Sprintf("feed %s: line %d: %q is not an address or network", e.Feed, e.Line, t)
}

// ParsePlain reads a plain list. Blank lines and comments (# or ;, at the
// start or after the entry) are skipped; a network with host bits is
// masked; IPv4-mapped IPv6 addresses are unmapped. Any other line makes
// the whole list malformed: an HTML error page served with 200 must not
// become a list. More than max entries is an error too.
func ParsePlain(name string, r io.Reader, max int) ([]netip.Prefix, error) {
	if max <= 0 {
		max = DefaultMax
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []netip.Prefix
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if i := bytes.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if i := bytes.IndexAny(line, " \t"); i >= 0 {
			line = line[:i] // "1.2.3.4 some note"
		}
		p, ok := parseEntry(string(line))
		if !ok {
			return nil, &LineError{Feed: name, Line: n, Text: string(line)}
		}
		if len(out) == max {
			return nil, fmt.Errorf("feed %s: more than %d entries (raise max or check the feed)", name, max)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("feed %s: line %d: %w", name, n+1, err)
	}
	return dedupe(out), nil
}

func parseEntry(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// dedupe sorts and removes repeated entries in O(n log n).
func dedupe(ps []netip.Prefix) []netip.Prefix {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Fetcher downloads feeds and remembers their validators.
type Fetcher struct {
	Client *http.Client
	// UserAgent names sipwall to the feed's server.
	UserAgent string
	// MaxPages bounds APIBan's paging (default 1000).
	MaxPages int

	etag     map[string]string
	modified map[string]string
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Timeout: 60 * time.Second}
}

func (f *Fetcher) ua() string {
	if f.UserAgent != "" {
		return f.UserAgent
	}
	return "sipwall"
}

func isHTTP(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
}

// Fetch downloads and parses feed. It returns ErrNotModified when the
// server says so (the previous list stays as it is).
func (f *Fetcher) Fetch(ctx context.Context, feed Feed) ([]netip.Prefix, error) {
	switch feed.Format {
	case Plain, "":
		body, err := f.get(ctx, feed, feed.URL, true)
		if err != nil {
			return nil, err
		}
		return ParsePlain(feed.Name, bytes.NewReader(body), feed.Max)
	case APIBan:
		return f.apiban(ctx, feed)
	}
	return nil, fmt.Errorf("feed %s: format %q is not plain or apiban", feed.Name, feed.Format)
}

func (f *Fetcher) get(ctx context.Context, feed Feed, u string, conditional bool) ([]byte, error) {
	if !isHTTP(u) {
		fh, err := os.Open(u)
		if err != nil {
			return nil, fmt.Errorf("feed %s: %w", feed.Name, err)
		}
		defer fh.Close()
		return readCapped(feed.Name, fh)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", feed.Name, err)
	}
	req.Header.Set("User-Agent", f.ua())
	if feed.Key != "" {
		req.Header.Set("Authorization", "Bearer "+feed.Key)
	}
	if conditional {
		if v := f.etag[feed.Name]; v != "" {
			req.Header.Set("If-None-Match", v)
		}
		if v := f.modified[feed.Name]; v != "" {
			req.Header.Set("If-Modified-Since", v)
		}
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", feed.Name, redact(err, feed.Key))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, ErrNotModified
	}
	body, err := readCapped(feed.Name, resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, &StatusError{Feed: feed.Name, Status: resp.StatusCode}
	}
	if conditional {
		if f.etag == nil {
			f.etag, f.modified = map[string]string{}, map[string]string{}
		}
		f.etag[feed.Name] = resp.Header.Get("ETag")
		f.modified[feed.Name] = resp.Header.Get("Last-Modified")
	}
	return body, nil
}

// Forget drops a feed's validators so that its next fetch is whole (after
// the list could not be written).
func (f *Fetcher) Forget(name string) {
	delete(f.etag, name)
	delete(f.modified, name)
}

// StatusError is an HTTP answer other than 200 or 304.
type StatusError struct {
	Feed   string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("feed %s: the server answered %d %s", e.Feed, e.Status, http.StatusText(e.Status))
}

func readCapped(name string, r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", name, err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("feed %s: larger than %d MiB", name, MaxBytes>>20)
	}
	return b, nil
}

// redact keeps an API key out of error messages (url.Error quotes the URL).
func redact(err error, key string) error {
	if key == "" {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(strings.ReplaceAll(ue.Error(), key, "KEY"))
	}
	return err
}

// apibanPage is one answer of APIBan's banned list.
type apibanPage struct {
	IPAddress []string `json:"ipaddress"`
	ID        any      `json:"ID"`
	IDLower   any      `json:"id"`
}

func (p apibanPage) id() string {
	for _, v := range []any{p.ID, p.IDLower} {
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return fmt.Sprintf("%.0f", x)
		}
	}
	return ""
}

// apiban pages through GET URL/banned, URL/banned/ID… until the ID is
// "none" (or a page brings nothing new), and returns the whole list.
func (f *Fetcher) apiban(ctx context.Context, feed Feed) ([]netip.Prefix, error) {
	max := feed.Max
	if max <= 0 {
		max = DefaultMax
	}
	pages := f.MaxPages
	if pages <= 0 {
		pages = 1000
	}
	base := strings.TrimRight(feed.URL, "/")
	next := base + "/banned"
	var out []netip.Prefix
	seen := map[string]bool{}
	for i := 0; ; i++ {
		if i == pages {
			return nil, fmt.Errorf("feed %s: more than %d pages", feed.Name, pages)
		}
		body, err := f.get(ctx, feed, next, false)
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest {
			// APIBan answers the end of the list with 400 and ID "none".
			var p apibanPage
			if json.Unmarshal(body, &p) == nil && p.id() == "none" {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		var p apibanPage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("feed %s: page %d is not APIBan's JSON: %v", feed.Name, i+1, err)
		}
		for _, s := range p.IPAddress {
			if pr, ok := parseEntry(strings.TrimSpace(s)); ok {
				if len(out) == max {
					return nil, fmt.Errorf("feed %s: more than %d entries (raise max or check the feed)", feed.Name, max)
				}
				out = append(out, pr)
			}
		}
		id := p.id()
		if id == "" || id == "none" || seen[id] {
			break
		}
		seen[id] = true
		next = base + "/banned/" + url.PathEscape(id)
	}
	return dedupe(out), nil
}
