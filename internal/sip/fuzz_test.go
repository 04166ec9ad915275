package sip

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var genSeeds = flag.Bool("gen-seeds", false, "rewrite testdata/fuzz/FuzzParse seeds from the RFC 4475 corpus")

// TestGenerateFuzzSeeds writes every torture message, and a few SIP
// payloads of the capture corpus, to the FuzzParse seed corpus.
func TestGenerateFuzzSeeds(t *testing.T) {
	if !*genSeeds {
		t.Skip("run with -gen-seeds to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(tortureDir, "*", "*.dat"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		write("rfc4475-"+filepath.Base(filepath.Dir(f))+"-"+strings.TrimSuffix(filepath.Base(f), ".dat"), data)
	}
	for i, pl := range corpusPayloads(t) {
		if i%150 == 0 {
			write(fmt.Sprintf("capture-%04d", i), pl)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nv: SIP/2.0/UDP x\r\nUser-Agent: friendly-scanner\r\nl: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\nCSeq: 1 OPTIONS\n folded\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		err := Parse(data, &m)
		known := []error{ErrEmpty, ErrKeepAlive, ErrNotSIP, ErrIncomplete, ErrContentLength, ErrShortBody}
		if err != nil {
			found := false
			for _, k := range known {
				found = found || errors.Is(err, k)
			}
			if !found {
				t.Fatalf("unknown error %v", err)
			}
		}
		if m.Len > len(data) || m.HeaderLen > len(data) || len(m.Body) > len(data) {
			t.Fatalf("Len %d HeaderLen %d Body %d beyond %d", m.Len, m.HeaderLen, len(m.Body), len(data))
		}
		if err == nil {
			if m.HeaderLen == 0 || m.Len != m.HeaderLen+len(m.Body) {
				t.Fatalf("HeaderLen %d Len %d Body %d", m.HeaderLen, m.Len, len(m.Body))
			}
			if m.ContentLength >= 0 && len(m.Body) != m.ContentLength {
				t.Fatalf("Body %d, Content-Length %d", len(m.Body), m.ContentLength)
			}
		}
		if m.Request && (len(m.MethodName) == 0 || len(m.RequestURI) == 0) {
			t.Fatal("request without method or URI")
		}
		if m.StatusCode != 0 && (m.StatusCode < 100 || m.StatusCode > 699) {
			t.Fatalf("status %d", m.StatusCode)
		}
		for h := Header(0); h < NumHeaders; h++ {
			v := m.Header(h)
			if len(v) > 0 && (isLWS(v[0]) || isLWS(v[len(v)-1])) {
				t.Fatalf("%v value %q not trimmed", h, v)
			}
			_ = URIHost(v)
			_ = AppendUnfolded(nil, v)
		}

		// The same bytes through a stream, in two pieces.
		s := NewStream(512)
		half := len(data) / 2
		for i, piece := range [][]byte{data[:half], data[half:]} {
			_ = s.Write(uint32(i*half), piece)
			for n := 0; n < 64; n++ {
				ok, err := s.Next(&m)
				if s.Buffered() < 0 || s.Buffered() > 512 {
					t.Fatalf("Buffered %d", s.Buffered())
				}
				if !ok && err == nil {
					break
				}
			}
		}
	})
}
