package sip

import (
	"bytes"
	"errors"
)

// DefaultStreamBuffer is the default per-flow buffer size of a Stream.
const DefaultStreamBuffer = 8 << 10

// Errors of Stream.
var (
	// ErrGap: a segment started beyond the next expected sequence number
	// (a segment was lost). The buffered bytes were dropped and the
	// segment was taken as the new start of the stream.
	ErrGap = errors.New("sip: stream: sequence gap, buffer dropped")
	// ErrOverflow: the buffered bytes and the segment do not fit in the
	// buffer, or the headers of a message do not fit. Everything buffered
	// was dropped; the stream starts over at the next segment.
	ErrOverflow = errors.New("sip: stream: buffer overflow, buffer dropped")
	// ErrTooLarge: a message's headers and Content-Length exceed the
	// buffer. The message was reported by Next with its headers and the
	// bytes it had; its remaining body bytes are skipped as they arrive.
	ErrTooLarge = errors.New("sip: stream: message larger than the buffer")
)

// Stream reassembles the SIP messages of one direction of one TCP flow in
// a fixed buffer. Write adds segments in sequence order (retransmitted
// bytes are dropped, a gap restarts the stream), Next cuts complete
// messages out by their Content-Length. Stream never allocates after it is
// made. It is not safe for concurrent use.
type Stream struct {
	buf        []byte
	start, end int
	next       uint32 // next expected sequence number
	synced     bool
	skip       int // body bytes of an oversized message still to discard
}

// NewStream returns a Stream with a buffer of size bytes (at least 1).
func NewStream(size int) *Stream {
	return &Stream{buf: make([]byte, max(size, 1))}
}

// Reset empties the stream and forgets its sequence number.
func (s *Stream) Reset() {
	s.start, s.end, s.next, s.synced, s.skip = 0, 0, 0, false, 0
}

// Buffered returns the number of bytes waiting for Next.
func (s *Stream) Buffered() int { return s.end - s.start }

// Write adds a TCP segment's payload with its sequence number. The first
// Write after NewStream or Reset fixes the stream's position. Write
// invalidates the Message filled by the previous Next.
func (s *Stream) Write(seq uint32, data []byte) error {
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	if !s.synced {
		s.next, s.synced = seq, true
	}
	var err error
	if d := int32(seq - s.next); d > 0 {
		s.start, s.end, s.skip = 0, 0, 0
		s.next = seq
		err = ErrGap
	} else if d < 0 {
		// Retransmitted bytes: keep only the new ones.
		old := int(-int64(d))
		if old >= len(data) {
			return nil
		}
		data = data[old:]
	}
	s.next += uint32(len(data))
	if s.skip > 0 {
		n := min(s.skip, len(data))
		s.skip -= n
		data = data[n:]
	}
	if s.end+len(data) > len(s.buf) {
		s.start, s.end, s.skip = 0, 0, 0
		return ErrOverflow
	}
	s.end += copy(s.buf[s.end:], data)
	return err
}

// Next cuts the next complete message out of the buffer into m. It returns
// false with a nil error when more bytes are needed. A message that
// cannot be framed (not SIP, unusable Content-Length) is an error, and the
// buffer is dropped. A message larger than the buffer is returned, as far
// as it was buffered, with ErrTooLarge; the rest of its body is skipped.
// Keep-alive CRLFs between messages are consumed silently. m is valid
// until the next Write.
func (s *Stream) Next(m *Message) (bool, error) {
	b := s.buf[s.start:s.end]
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	if i > 0 {
		// Keep-alive CRLFs before a message.
		s.start += i
		b = b[i:]
	}
	if len(b) == 0 {
		return false, nil
	}
	if !headersEnd(b) {
		if s.start == 0 && len(b) == len(s.buf) {
			s.start, s.end = 0, 0
			return false, ErrOverflow
		}
		return false, nil
	}
	switch err := Parse(b, m); err {
	case nil:
		if m.ContentLength < 0 {
			// Content-Length is mandatory on streams; without it the
			// body is empty (RFC 3261 §18.3).
			_ = Parse(b[:m.HeaderLen], m)
		}
	case ErrShortBody:
		if m.HeaderLen+m.ContentLength <= len(s.buf) {
			return false, nil
		}
		s.skip = m.HeaderLen + m.ContentLength - len(b)
		s.start = s.end
		return true, ErrTooLarge
	default:
		s.start, s.end = 0, 0
		return false, err
	}
	s.start += m.Len
	return true, nil
}

// headersEnd reports whether b holds an empty line (CRLFCRLF, LFLF or a
// mix) after its first line.
func headersEnd(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
		if len(b) > 0 && b[0] == '\n' || len(b) > 1 && b[0] == '\r' && b[1] == '\n' {
			return true
		}
	}
}

// StreamPool hands out Streams whose buffers come from blocks of
// poolChunk buffers, allocated as the streams are first needed, so that
// memory is bounded by the number of flows the pool was made for and grows
// only with the flows seen at once; a stream's buffer, once allocated, is
// reused. It is not safe for concurrent use.
type StreamPool struct {
	streams []Stream
	free    []*Stream
	size    int
	made    int // streams[:made] have their buffers
}

// poolChunk is the number of stream buffers allocated together.
const poolChunk = 64

// NewStreamPool makes a pool of n streams of size bytes each.
func NewStreamPool(n, size int) *StreamPool {
	n, size = max(n, 0), max(size, 1)
	p := &StreamPool{streams: make([]Stream, n), free: make([]*Stream, n), size: size}
	for i := range p.streams {
		p.free[i] = &p.streams[n-1-i]
	}
	return p
}

// Get returns an empty stream, or nil when all are in use.
func (p *StreamPool) Get() *Stream {
	if len(p.free) == 0 {
		return nil
	}
	s := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	if s.buf == nil {
		// The free list hands out the streams never used in order:
		// s is streams[made]. Give it and the next ones their buffers.
		end := min(p.made+poolChunk, len(p.streams))
		block := make([]byte, (end-p.made)*p.size)
		for i := p.made; i < end; i++ {
			o := (i - p.made) * p.size
			p.streams[i].buf = block[o : o+p.size : o+p.size]
		}
		p.made = end
		if s.buf == nil { // not streams[made]: a stream Put from elsewhere
			s.buf = make([]byte, p.size)
		}
	}
	s.Reset()
	return s
}

// Put returns a stream from Get to the pool.
func (p *StreamPool) Put(s *Stream) {
	if s == nil || len(p.free) == cap(p.free) {
		return
	}
	p.free = append(p.free, s)
}

// Free returns the number of streams available.
func (p *StreamPool) Free() int { return len(p.free) }
