package feeds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const voipbl = `# VoIPBL list
198.51.100.7
198.51.100.0/24 ; a network
203.0.113.9/32
2001:db8:66::/48 # v6
::ffff:203.0.113.10

198.51.100.7
`

func TestParsePlain(t *testing.T) {
	got, err := ParsePlain("voipbl", strings.NewReader(voipbl), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "198.51.100.0/24 198.51.100.7/32 203.0.113.9/32 203.0.113.10/32 2001:db8:66::/48"
	if s := fmt.Sprint(got); s != "["+want+"]" {
		t.Errorf("got %v\nwant [%s]", got, want)
	}
	// FireHOL netset header comments and a masked network.
	got, err = ParsePlain("firehol", strings.NewReader("#\n# firehol_level1\n#\n100.80.0.77/16\n"), 0)
	if err != nil || len(got) != 1 || got[0].String() != "100.80.0.0/16" {
		t.Errorf("firehol: %v, %v", got, err)
	}
	// An HTML page served with 200 is refused whole, naming the line.
	_, err = ParsePlain("voipbl", strings.NewReader("198.51.100.7\n<html><body>Service Unavailable\n"), 0)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("html page: %v", err)
	}
	// A size cap.
	if _, err := ParsePlain("big", strings.NewReader("192.0.2.1\n192.0.2.2\n192.0.2.3\n"), 2); err == nil {
		t.Error("cap not enforced")
	}
}

type memSink struct {
	mu    sync.Mutex
	lists map[string][]netip.Prefix
	n     int
	fail  error
}

func (m *memSink) Replace(_ context.Context, feed string, ps []netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.lists == nil {
		m.lists = map[string][]netip.Prefix{}
	}
	m.lists[feed] = append([]netip.Prefix(nil), ps...)
	m.n++
	return nil
}

func TestRunnerHTTP(t *testing.T) {
	var mu sync.Mutex
	body, etag, hits, conditional := voipbl, `"v1"`, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if r.Header.Get("If-None-Match") == etag {
			conditional++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	sink := &memSink{}
	r := &Runner{Fetcher: &Fetcher{}, Sink: sink, Protect: func(p netip.Prefix) string {
		if p.Contains(netip.MustParseAddr("203.0.113.9")) {
			return "trusted 203.0.113.9"
		}
		return ""
	}}
	f := Feed{Name: "voipbl", URL: srv.URL + "/list.txt", Format: Plain}
	r.Feeds = []Feed{f}
	ctx := context.Background()
	if err := r.Update(ctx, f); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.lists["voipbl"]); n != 4 {
		t.Fatalf("list has %d entries, want 4 (the protected one left out): %v", n, sink.lists["voipbl"])
	}
	// Unchanged: a conditional request, no write.
	if err := r.Update(ctx, f); err != nil || conditional != 1 || sink.n != 1 {
		t.Fatalf("unchanged: err %v, conditional %d, writes %d", err, conditional, sink.n)
	}
	// A malformed new version keeps the previous list and says why.
	mu.Lock()
	body, etag = "198.51.100.99\nnot an address\n", `"v2"`
	mu.Unlock()
	err := r.Update(ctx, f)
	if err == nil || !strings.Contains(err.Error(), "line 2") || len(sink.lists["voipbl"]) != 4 {
		t.Fatalf("malformed: %v, list %v", err, sink.lists["voipbl"])
	}
	if st := r.States(); st[0].LastError == "" || st[0].Entries != 4 {
		t.Errorf("state %+v", st)
	}
	// A server error keeps it too.
	srv.Close()
	if err := r.Update(ctx, f); err == nil || len(sink.lists["voipbl"]) != 4 {
		t.Fatalf("server away: %v", err)
	}
}

func TestAPIBanPaging(t *testing.T) {
	key := "s3cret-key"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/stable/banned":
			fmt.Fprint(w, `{"ipaddress":["198.51.100.1","198.51.100.2"],"ID":"100"}`)
		case "/stable/banned/100":
			fmt.Fprint(w, `{"ipaddress":["2001:db8::7","198.51.100.2"],"ID":200}`)
		case "/stable/banned/200":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"ipaddress":["no new bans"],"ID":"none"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := &Fetcher{}
	got, err := f.Fetch(context.Background(), Feed{Name: "apiban", URL: srv.URL + "/stable", Format: APIBan, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[198.51.100.1/32 198.51.100.2/32 2001:db8::7/128]" {
		t.Errorf("got %v", got)
	}
	_, err = f.Fetch(context.Background(), Feed{Name: "apiban", URL: srv.URL + "/stable", Format: APIBan, Key: "wrong"})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 403 {
		t.Errorf("wrong key: %v", err)
	}
}

func TestFileFeed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "list")
	os.WriteFile(p, []byte("192.0.2.77\n"), 0o644)
	got, err := (&Fetcher{}).Fetch(context.Background(), Feed{Name: "local", URL: p})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := (&Fetcher{}).Fetch(context.Background(), Feed{Name: "gone", URL: p + ".missing"}); err == nil || !strings.Contains(err.Error(), "feed gone") {
		t.Errorf("missing file: %v", err)
	}
}
