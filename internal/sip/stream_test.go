package sip

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sipMsg(i int, body string) string {
	return fmt.Sprintf("INVITE sip:%d@pbx SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nTo: <sip:%d@pbx>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c%d\r\nCSeq: %d INVITE\r\nContent-Length: %d\r\n\r\n%s", i, i, i, i, len(body), body)
}

// feed writes the stream in pieces of n bytes and collects the Call-IDs.
func feed(t *testing.T, s *Stream, data string, n int, seq uint32) []string {
	t.Helper()
	var got []string
	var m Message
	for len(data) > 0 {
		k := min(n, len(data))
		if err := s.Write(seq, []byte(data[:k])); err != nil {
			t.Fatalf("Write: %v", err)
		}
		seq += uint32(k)
		data = data[k:]
		for {
			ok, err := s.Next(&m)
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !ok {
				break
			}
			got = append(got, string(m.CallID())+"/"+string(m.Body))
		}
	}
	return got
}

func TestStreamSplitsMessages(t *testing.T) {
	data := sipMsg(1, "v=0\r\n") + "\r\n\r\n" + sipMsg(2, "") + sipMsg(3, strings.Repeat("x", 300))
	want := []string{"c1/v=0\r\n", "c2/", "c3/" + strings.Repeat("x", 300)}
	for _, n := range []int{1, 7, 100, len(data)} {
		s := NewStream(1024)
		got := feed(t, s, data, n, 1<<32-50) // sequence numbers wrap
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("pieces of %d: got %q", n, got)
		}
		if s.Buffered() != 0 {
			t.Errorf("pieces of %d: %d bytes left", n, s.Buffered())
		}
	}
}

func TestStreamRetransmitAndGap(t *testing.T) {
	a, b := sipMsg(1, "hello"), sipMsg(2, "")
	s := NewStream(1024)
	var m Message
	if err := s.Write(100, []byte(a[:50])); err != nil {
		t.Fatal(err)
	}
	// Retransmission overlapping the first 50 bytes.
	if err := s.Write(100, []byte(a)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(100, []byte(a[:10])); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Next(&m); !ok || err != nil || string(m.Body) != "hello" {
		t.Fatalf("Next = %v %v body %q", ok, err, m.Body)
	}
	// A lost segment: the next one starts further on.
	if err := s.Write(100+uint32(len(a))+10, []byte(b)); !errors.Is(err, ErrGap) {
		t.Fatalf("Write after gap = %v, want ErrGap", err)
	}
	if ok, err := s.Next(&m); !ok || err != nil || string(m.CallID()) != "c2" {
		t.Fatalf("after gap: %v %v %q", ok, err, m.CallID())
	}
}

func TestStreamBounds(t *testing.T) {
	var m Message
	s := NewStream(256)
	// Headers that never end fill the buffer.
	if err := s.Write(0, []byte("OPTIONS sip:a SIP/2.0\r\nX: "+strings.Repeat("y", 300))); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Write = %v, want ErrOverflow", err)
	}
	if s.Buffered() != 0 {
		t.Fatalf("buffer kept %d bytes after overflow", s.Buffered())
	}
	s.Reset()
	hdr := "OPTIONS sip:a SIP/2.0\r\nX: " + strings.Repeat("y", 300)
	if err := s.Write(0, []byte(hdr[:256])); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Next(&m); ok || !errors.Is(err, ErrOverflow) {
		t.Fatalf("Next on a full buffer without end of headers = %v %v", ok, err)
	}

	// A message whose body exceeds the buffer is reported with
	// ErrTooLarge, its body skipped, and the next message found.
	s.Reset()
	big := sipMsg(7, strings.Repeat("z", 1000))
	next := sipMsg(8, "")
	data := big + next
	seq := uint32(0)
	var got []string
	var tooLarge int
	for len(data) > 0 {
		k := min(100, len(data))
		if err := s.Write(seq, []byte(data[:k])); err != nil {
			t.Fatalf("Write: %v", err)
		}
		seq += uint32(k)
		data = data[k:]
		for {
			ok, err := s.Next(&m)
			if errors.Is(err, ErrTooLarge) {
				tooLarge++
				got = append(got, string(m.CallID()))
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, string(m.CallID()))
		}
	}
	if tooLarge != 1 || strings.Join(got, ",") != "c7,c8" {
		t.Errorf("got %v, %d too large", got, tooLarge)
	}

	// Not SIP: the buffer is dropped.
	s.Reset()
	_ = s.Write(0, []byte("GET / HTTP/1.1\r\n\r\n"))
	if ok, err := s.Next(&m); ok || !errors.Is(err, ErrNotSIP) || s.Buffered() != 0 {
		t.Errorf("Next on HTTP = %v %v, %d buffered", ok, err, s.Buffered())
	}
}

func TestStreamPool(t *testing.T) {
	p := NewStreamPool(2, 512)
	a, b := p.Get(), p.Get()
	if a == nil || b == nil || a == b || p.Get() != nil || p.Free() != 0 {
		t.Fatal("pool did not hand out exactly two streams")
	}
	_ = a.Write(0, []byte(strings.Repeat("x", 512)))
	if b.Buffered() != 0 {
		t.Fatal("streams share a buffer")
	}
	p.Put(a)
	if c := p.Get(); c != a || c.Buffered() != 0 {
		t.Fatal("reused stream not reset")
	}
	p.Put(b)
	p.Put(b) // a double Put beyond capacity is ignored
	if p.Free() > 2 {
		t.Fatalf("Free = %d", p.Free())
	}
}

// TestStreamPoolChunks: buffers are allocated as streams are first
// needed, poolChunk at a time, each stream its own, and reused.
func TestStreamPoolChunks(t *testing.T) {
	const n, size = 2*poolChunk + 3, 100
	p := NewStreamPool(n, size)
	if p.made != 0 {
		t.Fatalf("%d buffers allocated before any Get", p.made)
	}
	seen := map[*byte]bool{}
	var got []*Stream
	for i := range n {
		s := p.Get()
		if s == nil {
			t.Fatalf("Get %d: nil", i)
		}
		if want := min((i/poolChunk+1)*poolChunk, n); p.made != want {
			t.Fatalf("after %d Gets, %d buffers allocated, want %d", i+1, p.made, want)
		}
		if len(s.buf) != size || cap(s.buf) != size || seen[&s.buf[0]] {
			t.Fatalf("stream %d: buffer of %d/%d bytes, shared %v", i, len(s.buf), cap(s.buf), seen[&s.buf[0]])
		}
		seen[&s.buf[0]] = true
		got = append(got, s)
	}
	if p.Get() != nil {
		t.Fatal("more streams than the pool holds")
	}
	p.Put(got[5])
	if s := p.Get(); s != got[5] || p.made != n {
		t.Fatal("a returned stream was not reused")
	}
}

func TestStreamAllocs(t *testing.T) {
	p := NewStreamPool(4, DefaultStreamBuffer)
	data := []byte(sipMsg(1, "v=0\r\n") + sipMsg(2, ""))
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		s := p.Get()
		seq := uint32(5)
		for i := 0; i < len(data); i += 64 {
			chunk := data[i:min(i+64, len(data))]
			_ = s.Write(seq, chunk)
			seq += uint32(len(chunk))
			for {
				ok, _ := s.Next(&m)
				if !ok {
					break
				}
			}
		}
		p.Put(s)
	})
	if allocs != 0 {
		t.Fatalf("stream allocates %v times per run, want 0", allocs)
	}
}
