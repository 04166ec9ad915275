// Package follow reads log files line by line with bounded memory: a
// LineReader for one pass over a file, and a Follower that keeps reading a
// file as it grows, across rename and copytruncate rotation and across
// restarts (it remembers device, inode, offset and the file's first bytes in
// a state file).
//
// Lines are bytes: nothing is decoded, so non-UTF-8 and NUL bytes pass
// through. A line longer than the limit is skipped whole and counted, never
// cut: matching the cut-off head of a line would let a caller choose what
// the tail of a shortened line says.
package follow

import (
	"bytes"
	"context"
	"errors"
	"io"
)

// DefaultMaxLine is the default line length limit, newline excluded.
const DefaultMaxLine = 64 << 10

// LineReader splits a reader into lines, holding at most MaxLine bytes.
type LineReader struct {
	r        io.Reader
	buf      []byte
	start    int
	end      int
	max      int
	skipping bool  // inside an over-long line
	consumed int64 // bytes of complete lines (and skipped lines) returned so far
	read     int64 // bytes read from r
	overlong int64
	err      error
}

// NewLineReader returns a reader of lines of at most maxLine bytes
// (DefaultMaxLine if maxLine <= 0).
func NewLineReader(r io.Reader, maxLine int) *LineReader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &LineReader{r: r, buf: make([]byte, min(maxLine+1, 64<<10)), max: maxLine}
}

// Next returns the next complete line without its "\n" (a trailing "\r" is
// kept). The slice is valid until the next call. At the end of the input it
// returns io.EOF; an unterminated last line stays pending (see Pending), so
// a file that is still being written is never read half a line at a time.
// Reading again after io.EOF picks up data appended since.
func (l *LineReader) Next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.start:l.end], '\n'); i >= 0 {
			line := l.buf[l.start : l.start+i]
			l.start += i + 1
			l.consumed += int64(i) + 1
			if l.skipping {
				l.skipping = false
				continue
			}
			return line, nil
		}
		if l.end-l.start > l.max || l.skipping {
			// Over-long: drop what is buffered, skip to the next newline.
			if !l.skipping {
				l.skipping = true
				l.overlong++
			}
			l.consumed += int64(l.end - l.start)
			l.start, l.end = 0, 0
		}
		if l.err != nil {
			err := l.err
			l.err = nil
			return nil, err
		}
		if l.start > 0 {
			l.end = copy(l.buf, l.buf[l.start:l.end])
			l.start = 0
		}
		if l.end == len(l.buf) {
			grown := make([]byte, min(2*len(l.buf), l.max+1))
			l.end = copy(grown, l.buf[:l.end])
			l.buf = grown
		}
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		l.read += int64(n)
		if err != nil {
			if n > 0 {
				l.err = err
				continue
			}
			return nil, err
		}
		if n == 0 {
			return nil, io.ErrNoProgress
		}
	}
}

// Pending returns the bytes of an unterminated last line read so far (nil
// while skipping an over-long line).
func (l *LineReader) Pending() []byte {
	if l.skipping {
		return nil
	}
	return l.buf[l.start:l.end]
}

// Offset returns the number of input bytes up to the end of the last line
// returned or skipped: where to resume so that no line is read twice.
func (l *LineReader) Offset() int64 { return l.consumed }

// ReadBytes returns the number of bytes read from the underlying reader.
func (l *LineReader) ReadBytes() int64 { return l.read }

// Overlong returns the number of lines skipped for being too long.
func (l *LineReader) Overlong() int64 { return l.overlong }

// ReadAll calls fn for every line of r, the unterminated last line included,
// with its 1-based number; over-long lines are skipped but numbered. It
// returns the number of lines and of over-long lines.
func ReadAll(r io.Reader, maxLine int, fn func(n int, line []byte)) (lines int, overlong int64, err error) {
	l := NewLineReader(r, maxLine)
	n := 0
	for {
		before := l.overlong
		line, err := l.Next()
		n += int(l.overlong - before)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if p := l.Pending(); len(p) > 0 {
					n++
					fn(n, p)
				}
				return n, l.overlong, nil
			}
			return n, l.overlong, err
		}
		n++
		fn(n, line)
	}
}

// WithContext returns a reader of r that fails with ctx's error once ctx is
// done, so that a reader of an endless input (a device, a pipe that never
// closes, one line without end) stops when told.
func WithContext(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
