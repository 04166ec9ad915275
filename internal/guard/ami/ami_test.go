package ami

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/guard/events"
)

const secEvent = "Event: InvalidAccountID\r\nPrivilege: security,all\r\nEventTV: 2015-05-24T08:42:16.296+0300\r\nSeverity: Error\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: 1001\r\nSessionID: 0x7f8ecc0421f8\r\nLocalAddress: IPV4/UDP/192.0.2.10/5060\r\nRemoteAddress: IPV4/UDP/198.51.100.7/5084\r\n\r\n"

// server is a manager on a real TCP socket that accepts user "guard" with
// secret "s3cret", sends one security event per connection, then hangs up
// (so the client must reconnect).
func server(t *testing.T) (addr string, logins func() []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var seen []string
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.Write([]byte("Asterisk Call Manager/7.0.3\r\n"))
				r := bufio.NewReader(c)
				var req []string
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					if line == "" {
						break
					}
					req = append(req, line)
				}
				mu.Lock()
				seen = append(seen, strings.Join(req, "|"))
				mu.Unlock()
				joined := strings.Join(req, "|")
				if !strings.Contains(joined, "Username: guard") || !strings.Contains(joined, "Secret: s3cret") {
					c.Write([]byte("Response: Error\r\nActionID: sipwall-login\r\nMessage: Authentication failed\r\n\r\n"))
					return
				}
				c.Write([]byte("Event: FullyBooted\r\nPrivilege: system,all\r\n\r\nResponse: Success\r\nActionID: sipwall-login\r\nMessage: Authentication accepted\r\n\r\n"))
				c.Write([]byte(secEvent))
				time.Sleep(20 * time.Millisecond)
			}(c)
		}
	}()
	return l.Addr().String(), func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func TestLoginEventsReconnect(t *testing.T) {
	addr, logins := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []events.Event
	ups := 0
	err := Run(ctx, Config{Addr: addr, Username: "guard", Secret: "s3cret", MinBackoff: 10 * time.Millisecond,
		OnState: func(up bool) {
			if up {
				ups++
			}
		}}, func(block []byte) {
		ev, res, why := events.ClassifyAMI(block)
		if res != events.Matched {
			t.Errorf("block not matched (%s): %q", why, block)
			return
		}
		got = append(got, ev)
		if len(got) == 3 {
			cancel()
		}
	})
	if err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if len(got) != 3 || ups < 3 {
		t.Fatalf("events %d, logins %d: want 3 each (one per connection)", len(got), ups)
	}
	if got[0].Kind != events.InvalidAccountID || got[0].Addr.String() != "198.51.100.7" {
		t.Errorf("event %+v", got[0])
	}
	if l := logins()[0]; !strings.Contains(l, "Action: Login") || !strings.Contains(l, "Events: security") {
		t.Errorf("login request %q", l)
	}
}

func TestLoginRefusedKeepsTrying(t *testing.T) {
	addr, logins := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n := 0
	err := Run(ctx, Config{Addr: addr, Username: "guard", Secret: "wrong", MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}, func([]byte) { n++ })
	if err != context.DeadlineExceeded {
		t.Fatalf("Run: %v", err)
	}
	if n != 0 {
		t.Errorf("%d events without a login", n)
	}
	if k := len(logins()); k < 2 || k > 8 {
		t.Errorf("%d login attempts in 300 ms with backoff 20..80 ms", k)
	}
}

func TestReadBlockBounds(t *testing.T) {
	long := "Event: X\r\nData: " + strings.Repeat("y", 200) + "\r\n\r\n" + secEvent
	r := bufio.NewReaderSize(strings.NewReader(long), 64)
	if _, err := readBlock(r, nil, 100); err != errTooLong {
		t.Fatalf("long block: %v", err)
	}
	b, err := readBlock(r, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := field(b, "RemoteAddress"); string(v) != "IPV4/UDP/198.51.100.7/5084" {
		t.Errorf("next block: %q", b)
	}
}
