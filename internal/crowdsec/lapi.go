// Package crowdsec joins sipwall to a CrowdSec Local API (LAPI) on both
// sides: as a bouncer it pulls the decision stream and turns it into bans in
// sipwall's own lists; as a watcher it pushes the bans guard makes as alerts,
// so that every other host sharing the LAPI enforces them on its next pull.
//
// The LAPI client is written here on net/http: the module proxy this project
// builds from does not serve crowdsecurity/go-cs-bouncer, and the part of the
// API a bouncer and a watcher need is four calls.
package crowdsec

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Decision is one LAPI decision as the stream returns it.
type Decision struct {
	ID       int64  `json:"id"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
	// Duration is what is left of the decision ("3h59m58.9s"); deleted
	// decisions carry a negative one.
	Duration string `json:"duration"`
	// UUID is set by newer LAPIs; kept only for reports.
	UUID string `json:"uuid,omitempty"`
}

// Stream is one answer of GET /v1/decisions/stream. LAPI 1.4 answers an
// empty pull with nulls, which decode as nil slices.
type Stream struct {
	New     []Decision `json:"new"`
	Deleted []Decision `json:"deleted"`
}

// Config says where the LAPI is and how to authenticate.
type Config struct {
	// URL is the LAPI's base address, like http://127.0.0.1:8080.
	URL string
	// APIKey is the bouncer key (cscli bouncers add).
	APIKey string
	// MachineID and Password are the watcher login (cscli machines add);
	// empty for a bouncer that only pulls.
	MachineID, Password string
	// CAFile verifies an https LAPI; CertFile and KeyFile are an optional
	// client certificate.
	CAFile, CertFile, KeyFile string
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// UserAgent names the client to the LAPI.
	UserAgent string
}

// Client talks to one LAPI.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client

	mu    sync.Mutex
	token string
	until time.Time
}

// ErrUnauthorized is returned when the LAPI refuses the key or the login.
var ErrUnauthorized = errors.New("crowdsec: the LAPI refused the credentials")

// NewClient checks cfg and prepares the HTTP client (TLS included).
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("crowdsec: url %q is not an http(s) address like http://127.0.0.1:8080", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "sipwall/1" // LAPI wants NAME/VERSION: a bare name is refused at login
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a LAPI is local or on the fleet's network, never through a proxy
	if u.Scheme == "https" || cfg.CAFile != "" || cfg.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("crowdsec: ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("crowdsec: ca_file %s: no PEM certificate in it", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		if cfg.CertFile != "" || cfg.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("crowdsec: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	return &Client{cfg: cfg, base: u, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// CanPush reports whether the client has watcher credentials.
func (c *Client) CanPush() bool { return c.cfg.MachineID != "" }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// APIError is a LAPI answer that is not a success.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("crowdsec: %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, auth func(*http.Request), out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("crowdsec: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("%w (%s %s: %d)", ErrUnauthorized, method, path, resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(msg, &m) == nil && m.Message != "" {
			msg = []byte(m.Message)
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("crowdsec: %s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) apiKey(r *http.Request) { r.Header.Set("X-Api-Key", c.cfg.APIKey) }

// Pull asks for the decision stream: every active decision when startup is
// true, otherwise what changed since this bouncer's previous pull. scopes
// limits the scopes asked for (the LAPI's "scopes" filter), origins the
// origins ("origins", LAPI 1.4.2 and later); empty asks for all.
func (c *Client) Pull(ctx context.Context, startup bool, scopes, origins []string) (*Stream, error) {
	q := url.Values{"startup": {fmt.Sprint(startup)}}
	if len(scopes) > 0 {
		q.Set("scopes", strings.Join(scopes, ","))
	}
	if len(origins) > 0 {
		q.Set("origins", strings.Join(origins, ","))
	}
	var s Stream
	if err := c.do(ctx, http.MethodGet, "/v1/decisions/stream", q, nil, c.apiKey, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Active returns the active decisions on one scope and value
// (GET /v1/decisions; LAPI 1.4 answers none with null).
func (c *Client) Active(ctx context.Context, scope, value string) ([]Decision, error) {
	q := url.Values{"scope": {scope}, "value": {value}}
	var out []Decision
	if err := c.do(ctx, http.MethodGet, "/v1/decisions", q, nil, c.apiKey, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// login gets (or reuses) the watcher's JWT.
func (c *Client) login(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.until) {
		return c.token, nil
	}
	body := map[string]any{"machine_id": c.cfg.MachineID, "password": c.cfg.Password, "scenarios": Scenarios}
	var out struct {
		Token  string `json:"token"`
		Expire string `json:"expire"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/watchers/login", nil, body, func(*http.Request) {}, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", fmt.Errorf("crowdsec: login answered without a token")
	}
	until := time.Now().Add(30 * time.Minute)
	if t, err := time.Parse(time.RFC3339, out.Expire); err == nil {
		until = t.Add(-time.Minute)
	}
	c.token, c.until = out.Token, until
	return c.token, nil
}

func (c *Client) forget() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}

// Push sends alerts (each with its decision) as the watcher. A refused
// token is renewed once.
func (c *Client) Push(ctx context.Context, alerts []Alert) error {
	if !c.CanPush() {
		return errors.New("crowdsec: no machine_id: this host only pulls")
	}
	for try := 0; ; try++ {
		tok, err := c.login(ctx)
		if err != nil {
			return err
		}
		err = c.do(ctx, http.MethodPost, "/v1/alerts", nil, alerts, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+tok)
		}, nil)
		if errors.Is(err, ErrUnauthorized) && try == 0 {
			c.forget()
			continue
		}
		return err
	}
}
