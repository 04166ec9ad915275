// Package ami is a minimal Asterisk Manager Interface client for sipwall
// guard: it connects over TCP, logs in with an account, asks for security
// and system events only (`Events: security,system`: failures and
// successful authentications, and the registrations reported by
// ContactStatus and PeerStatus; the account needs `read = security,system`
// in manager.conf), and hands every event block to a
// callback; when the connection drops it reconnects with exponential
// backoff. It sends no other action.
package ami

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config is where and how to log in.
type Config struct {
	Addr     string // host:port (Asterisk's default is 5038)
	Username string
	Secret   string

	// Backoff between reconnections: MinBackoff doubling up to
	// MaxBackoff (defaults 500 ms and 30 s); a connection that stayed up
	// for MaxBackoff resets it.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds connecting and logging in (default 10 s).
	DialTimeout time.Duration
	// MaxBlock bounds one event block in bytes (default 64 KiB); a longer
	// block is skipped.
	MaxBlock int

	Logger *slog.Logger
	// OnState, when set, is called with true after each successful login
	// and with false when the connection is lost.
	OnState func(up bool)
}

// ErrLogin is a login the manager refused; Run keeps retrying (the
// account may be fixed while guard runs) but says so.
var ErrLogin = errors.New("ami: login refused")

// Run connects, logs in and calls fn with every event block (the lines of
// one event, without the empty line that ends it) until ctx ends. fn runs
// on Run's goroutine; the block is only valid during the call.
func Run(ctx context.Context, cfg Config, fn func(block []byte)) error {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxBlock <= 0 {
		cfg.MaxBlock = 64 << 10
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	backoff := cfg.MinBackoff
	for {
		start := time.Now()
		err := session(ctx, cfg, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cfg.OnState != nil {
			cfg.OnState(false)
		}
		if time.Since(start) >= cfg.MaxBackoff {
			backoff = cfg.MinBackoff
		}
		log.Warn("AMI connection lost; reconnecting", "addr", cfg.Addr, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}

// session is one connection: login, then events until it fails.
func session(ctx context.Context, cfg Config, fn func([]byte)) error {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ami: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	c.SetDeadline(time.Now().Add(cfg.DialTimeout))
	r := bufio.NewReaderSize(c, 16<<10)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("ami: greeting: %w", err)
	}
	if !strings.HasPrefix(greeting, "Asterisk Call Manager") {
		return fmt.Errorf("ami: %q is not an Asterisk manager greeting", strings.TrimSpace(greeting))
	}
	login := "Action: Login\r\nActionID: sipwall-login\r\nUsername: " + clean(cfg.Username) +
		"\r\nSecret: " + clean(cfg.Secret) + "\r\nEvents: security,system\r\n\r\n"
	if _, err := io.WriteString(c, login); err != nil {
		return fmt.Errorf("ami: login: %w", err)
	}
	var block []byte
	// The response to the login; events may not come before it.
	for {
		block, err = readBlock(r, block[:0], cfg.MaxBlock)
		if err != nil {
			return fmt.Errorf("ami: login: %w", err)
		}
		if v, ok := field(block, "Response"); ok {
			if string(v) != "Success" {
				msg, _ := field(block, "Message")
				return fmt.Errorf("%w: %s", ErrLogin, msg)
			}
			break
		}
	}
	c.SetDeadline(time.Time{})
	if cfg.OnState != nil {
		cfg.OnState(true)
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("AMI logged in", "addr", cfg.Addr, "user", cfg.Username)
	}
	for {
		block, err = readBlock(r, block[:0], cfg.MaxBlock)
		if errors.Is(err, errTooLong) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ami: %w", err)
		}
		if _, ok := field(block, "Event"); ok {
			fn(block)
		}
	}
}

// clean keeps a header value on one line.
func clean(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

var errTooLong = errors.New("event block too long")

// readBlock reads lines up to an empty line into dst.
func readBlock(r *bufio.Reader, dst []byte, maxLen int) ([]byte, error) {
	tooLong := false
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			tooLong = true
			continue
		}
		if err != nil {
			return dst, err
		}
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			if len(dst) == 0 && !tooLong {
				continue // stray empty line between blocks
			}
			if tooLong {
				return dst[:0], errTooLong
			}
			return dst, nil
		}
		if len(dst)+len(line) > maxLen {
			tooLong = true
			continue
		}
		dst = append(dst, t...)
		dst = append(dst, '\n')
	}
}

// field returns the value of "Key: value" in a block.
func field(block []byte, key string) ([]byte, bool) {
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		if len(line) > len(key)+1 && string(line[:len(key)]) == key && line[len(key)] == ':' {
			return bytes.TrimSpace(line[len(key)+1:]), true
		}
	}
	return nil, false
}
