// Package capture reads pcap and pcapng capture files packet by packet,
// reusing one buffer, for the replay engine.
//
// NewReader detects the format by its magic number (pcap in either byte
// order, micro- or nanosecond timestamps, optionally gzip-compressed;
// pcapng) and reads it with gopacket's pcapgo, which needs no cgo. Next
// returns one Record at a time; its Data is valid until the following call.
//
// Every error is a *Error naming the file and, past the file header, the
// packet number, as in "svmap.pcap: packet 12: truncated record". Records
// returned before an error stay valid results: a truncated capture yields
// all its complete packets and then ErrTruncated. A link type that
// internal/packet cannot decode is refused when the file is opened.
//
// The reader bounds what a corrupt file can make it allocate: records
// longer than MaxSnaplen are refused, and the pcapng packet blocks are
// checked against their block length before pcapgo reads them.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/sipwall/sipwall/internal/packet"
)

// MaxSnaplen is the largest record the reader accepts (tcpdump's
// MAXIMUM_SNAPLEN).
const MaxSnaplen = 262144

// peekWindow is the read buffer size, and how far ahead pcapng blocks are
// checked.
const peekWindow = 1 << 16

// Error kinds, wrapped by *Error; test with errors.Is.
var (
	// ErrNotCapture: the file does not start with a pcap or pcapng magic
	// number.
	ErrNotCapture = errors.New("not a pcap or pcapng capture")
	// ErrTruncated: the file ends inside a header or record.
	ErrTruncated = errors.New("truncated record")
	// ErrLinkType: the capture's link type is not one the decoder knows.
	ErrLinkType = errors.New("unsupported link type")
	// ErrCorrupt: a header or record contradicts itself.
	ErrCorrupt = errors.New("corrupt record")
)

// Error is a reading error with the file name and the 1-based number of
// the packet being read (0 for the file header).
type Error struct {
	File   string
	Packet int
	Err    error
}

func (e *Error) Error() string {
	if e.Packet > 0 {
		return fmt.Sprintf("%s: packet %d: %v", e.File, e.Packet, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Format is a capture file format.
type Format uint8

// Formats.
const (
	FormatPcap Format = iota + 1
	FormatPcapng
)

// String names the format.
func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapng:
		return "pcapng"
	}
	return "unknown"
}

// Record is one captured packet.
type Record struct {
	Number    int // 1-based position in the file
	Timestamp time.Time
	LinkType  packet.LinkType
	Length    int    // length on the wire
	Data      []byte // captured bytes; valid until the next Next
}

// Reader reads one capture file. It is not safe for concurrent use.
type Reader struct {
	name       string
	format     Format
	link       packet.LinkType
	br         *bufio.Reader
	pcap       *pcapgo.Reader
	flat       *flatPcap // plain (uncompressed) pcap: records sliced in place
	ng         *pcapgo.NgReader
	ngBig      bool     // byte order of the current pcapng section
	linkSeen   bool     // a pcapng interface description was seen
	n          int      // packets read
	pcapHeader [24]byte // the pcap file header, for the full link type
	err        error
}

const (
	magicMicro     = 0xa1b2c3d4
	magicNano      = 0xa1b23c4d
	magicNg        = 0x0a0d0d0a
	magicNgBOM     = 0x1a2b3c4d
	ngTypeSHB      = 0x0a0d0d0a
	ngTypeIDB      = 1
	ngTypePacket   = 2
	ngTypeSimple   = 3
	ngTypeEnhanced = 6
)

// NewReader opens the capture read from r; name is used in errors (a file
// name, usually its base name).
func NewReader(name string, r io.Reader) (rd *Reader, err error) {
	rd = &Reader{name: name, br: bufio.NewReaderSize(r, peekWindow)}
	defer func() {
		if p := recover(); p != nil {
			rd, err = nil, rd.wrap(fmt.Errorf("%w: %v", ErrCorrupt, p))
		}
	}()
	head, _ := rd.br.Peek(12)
	if len(head) < 4 {
		return nil, rd.wrap(fmt.Errorf("%w: %d bytes", ErrNotCapture, len(head)))
	}
	le, be := binary.LittleEndian.Uint32(head), binary.BigEndian.Uint32(head)
	switch {
	case le == magicNg:
		rd.format = FormatPcapng
		if len(head) < 12 {
			return nil, rd.wrap(ErrTruncated)
		}
		rd.ngBig = binary.BigEndian.Uint32(head[8:]) == magicNgBOM
		// checkNg stops at the first interface description and takes the
		// link type from it (pcapgo keeps only its low byte).
		if err := rd.checkNg(); err != nil {
			return nil, rd.wrap(err)
		}
		if !rd.linkSeen {
			if all, _ := rd.br.Peek(peekWindow); len(all) < peekWindow {
				return nil, rd.wrap(fmt.Errorf("%w: file ends before the first interface description", ErrTruncated))
			}
			return nil, rd.wrap(fmt.Errorf("%w: no interface description within the first %d bytes", ErrCorrupt, peekWindow))
		}
		ng, err := pcapgo.NewNgReader(rd.br, pcapgo.NgReaderOptions{ErrorOnMismatchingLinkType: true})
		if err != nil {
			return nil, rd.wrap(rd.pcapgoErr(err, false))
		}
		rd.ng = ng
	case le == magicMicro || be == magicMicro || le == magicNano || be == magicNano || head[0] == 0x1f && head[1] == 0x8b:
		rd.format = FormatPcap
		if h, _ := rd.br.Peek(24); len(h) == 24 {
			copy(rd.pcapHeader[:], h)
		}
		pr, err := pcapgo.NewReader(rd.br)
		if err != nil {
			return nil, rd.wrap(rd.pcapgoErr(err, false))
		}
		// Bound the record buffer, and accept records above a small
		// declared snap length as tcpdump and Wireshark do.
		pr.SetSnaplen(MaxSnaplen)
		rd.pcap = pr
		if head[0] != 0x1f {
			// pcapgo has checked the file header and consumed it: read
			// the records straight out of one large buffer.
			rd.flat = newFlatPcap(rd.br, rd.pcapHeader)
		}
		// pcapgo keeps only the low byte of the link type: read it here.
		if head[0] == 0x1f {
			rd.link = packet.LinkType(pr.LinkType())
		} else if le == magicMicro || le == magicNano {
			rd.link = packet.LinkType(binary.LittleEndian.Uint32(rd.pcapHeader[20:24]))
		} else {
			rd.link = packet.LinkType(binary.BigEndian.Uint32(rd.pcapHeader[20:24]))
		}
	default:
		return nil, rd.wrap(fmt.Errorf("%w: magic %08x", ErrNotCapture, be))
	}
	if !rd.link.Supported() {
		return nil, rd.wrap(fmt.Errorf("%w %d", ErrLinkType, uint32(rd.link)))
	}
	return rd, nil
}

// Format returns the file's format.
func (r *Reader) Format() Format { return r.format }

// LinkType returns the capture's link type.
func (r *Reader) LinkType() packet.LinkType { return r.link }

// Count returns the number of packets returned so far.
func (r *Reader) Count() int { return r.n }

func (r *Reader) wrap(err error) error {
	return &Error{File: r.name, Packet: r.n, Err: err}
}

// Next returns the next packet. At the end of the file it returns io.EOF
// (unwrapped). Any other error is a *Error, and it is sticky: every later
// call returns it again. Next does not allocate in steady state.
func (r *Reader) Next() (rec Record, err error) {
	if r.err != nil {
		return Record{}, r.err
	}
	if r.flat != nil {
		// The plain pcap reader checks every length before slicing: it
		// needs no recover.
		r.n++
		rec, err = r.flat.next(r)
		if err != nil {
			r.err = err
		}
		return rec, err
	}
	defer func() {
		if p := recover(); p != nil {
			rec, err = Record{}, r.wrap(fmt.Errorf("%w: %v", ErrCorrupt, p))
			r.err = err
		}
	}()
	rec, err = r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	r.n++
	var rec Record
	if r.ng != nil {
		if err := r.checkNg(); err != nil {
			return rec, r.wrap(err)
		}
		data, ci, err := r.ng.ZeroCopyReadPacketData()
		if err != nil {
			return rec, r.readErr(err, ci.CaptureLength > 0)
		}
		rec = Record{Number: r.n, Timestamp: ci.Timestamp, LinkType: r.link, Length: ci.Length, Data: data}
		return rec, nil
	}
	data, ci, err := r.pcap.ZeroCopyReadPacketData()
	if err != nil {
		return rec, r.readErr(err, ci.CaptureLength > 0)
	}
	rec = Record{Number: r.n, Timestamp: ci.Timestamp, LinkType: r.link, Length: ci.Length, Data: data}
	return rec, nil
}

// flatBuffer is the plain pcap reader's buffer: many records per read, and
// room for the largest record (MaxSnaplen and its header).
const flatBuffer = 1 << 20

// flatPcap reads the records of an uncompressed pcap file: it fills one
// large buffer from the file and returns each record's data as a slice of
// it, with no copy per record. Its results and errors are those of pcapgo's
// Reader with the snap length set to MaxSnaplen.
type flatPcap struct {
	r      io.Reader
	buf    []byte
	lo, hi int
	big    bool
	factor uint32 // nanoseconds per timestamp unit
	err    error  // the read error that ended the input
}

func newFlatPcap(r io.Reader, hdr [24]byte) *flatPcap {
	f := &flatPcap{r: r, buf: make([]byte, flatBuffer), factor: 1000}
	m := binary.LittleEndian.Uint32(hdr[:4])
	f.big = m != magicMicro && m != magicNano
	if m == magicNano || binary.BigEndian.Uint32(hdr[:4]) == magicNano {
		f.factor = 1
	}
	return f
}

// fill makes n bytes available at lo, as io.ReadFull would: io.EOF when the
// input ends with none of them, io.ErrUnexpectedEOF when it ends with some.
func (f *flatPcap) fill(n int) error {
	if f.hi-f.lo >= n {
		return nil
	}
	if f.lo+n > len(f.buf) {
		f.hi = copy(f.buf, f.buf[f.lo:f.hi])
		f.lo = 0
	}
	for f.hi-f.lo < n {
		if f.err != nil {
			if f.err == io.EOF && f.hi > f.lo {
				return io.ErrUnexpectedEOF
			}
			return f.err
		}
		m, err := f.r.Read(f.buf[f.hi:])
		f.hi += m
		if err != nil {
			f.err = err
		} else if m == 0 {
			f.err = io.ErrNoProgress
		}
	}
	return nil
}

func (f *flatPcap) u32(b []byte) uint32 {
	if f.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (f *flatPcap) next(r *Reader) (Record, error) {
	if err := f.fill(16); err != nil {
		return Record{}, r.readErr(err, false)
	}
	h := f.buf[f.lo : f.lo+16]
	caplen, length := f.u32(h[8:12]), f.u32(h[12:16])
	if caplen > MaxSnaplen {
		return Record{}, r.readErr(fmt.Errorf("capture length exceeds snap length: %d > %d", caplen, MaxSnaplen), caplen > 0)
	}
	if caplen > length {
		return Record{}, r.readErr(fmt.Errorf("capture length exceeds original packet length: %d > %d", caplen, length), caplen > 0)
	}
	ts := time.Unix(int64(f.u32(h[0:4])), int64(f.u32(h[4:8])*f.factor)).UTC()
	if err := f.fill(16 + int(caplen)); err != nil {
		if err == io.ErrUnexpectedEOF && f.hi-f.lo == 16 {
			err = io.EOF // the record's data is missing entirely
		}
		return Record{}, r.readErr(err, caplen > 0)
	}
	data := f.buf[f.lo+16 : f.lo+16+int(caplen) : f.lo+16+int(caplen)]
	f.lo += 16 + int(caplen)
	return Record{Number: r.n, Timestamp: ts, LinkType: r.link, Length: int(length), Data: data}, nil
}

// readErr turns a pcapgo error into the reader's: io.EOF where the file
// ends cleanly between records, a *Error otherwise.
func (r *Reader) readErr(err error, inRecord bool) error {
	if err == io.EOF && !inRecord {
		r.n--
		return io.EOF
	}
	return r.wrap(r.pcapgoErr(err, inRecord))
}

func (r *Reader) pcapgoErr(err error, inRecord bool) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF) && inRecord:
		return ErrTruncated
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: file ends inside the file header", ErrTruncated)
	case errors.Is(err, pcapgo.ErrNgLinkTypeMismatch):
		return fmt.Errorf("%w: interfaces with different link types", ErrLinkType)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// checkNg looks at the pcapng blocks ahead, up to the next packet block and
// within the read buffer, before pcapgo reads them: it finds blocks cut
// short by the end of the file (pcapgo takes those for a clean end) and
// packet blocks whose capture length is out of bounds (pcapgo would
// allocate it).
func (r *Reader) checkNg() error {
	off := 0
	big := r.ngBig
	for {
		hdr, err := r.br.Peek(off + 12)
		if len(hdr) <= off {
			return nil // the end of the file, between blocks
		}
		if len(hdr) < off+12 && err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(hdr) < off+8 {
				return fmt.Errorf("%w: file ends inside a block header", ErrTruncated)
			}
		}
		if len(hdr) < off+8 {
			return nil // beyond the window
		}
		order := binary.ByteOrder(binary.LittleEndian)
		typ := order.Uint32(hdr[off:])
		if typ == ngTypeSHB {
			if len(hdr) < off+12 {
				return fmt.Errorf("%w: file ends inside a section header", ErrTruncated)
			}
			big = binary.BigEndian.Uint32(hdr[off+8:]) == magicNgBOM
		}
		if big {
			order = binary.BigEndian
		}
		typ = order.Uint32(hdr[off:])
		blen := int(order.Uint32(hdr[off+4:]))
		if blen < 12 || blen%4 != 0 {
			return fmt.Errorf("%w: block length %d", ErrCorrupt, blen)
		}
		if typ == ngTypeSHB && off == 0 {
			r.ngBig = big
		}
		blk, err := r.br.Peek(off + blen)
		if len(blk) < off+blen {
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("%w: file ends inside a block of %d bytes", ErrTruncated, blen)
			}
		}
		if typ == ngTypeIDB && blen >= 20 && len(blk) >= off+10 {
			link := packet.LinkType(order.Uint16(blk[off+8:]))
			if !r.linkSeen {
				r.link, r.linkSeen = link, true
				if r.ng == nil {
					return nil // opening: the first interface is all we need
				}
			} else if link != r.link {
				return fmt.Errorf("%w: interfaces with different link types (%d, %d)", ErrLinkType, uint32(r.link), uint32(link))
			}
		}
		switch typ {
		case ngTypeEnhanced, ngTypePacket:
			if len(blk) < off+24 {
				return nil
			}
			caplen := int(order.Uint32(blk[off+20:]))
			if caplen > blen-32 || caplen > MaxSnaplen {
				return fmt.Errorf("%w: capture length %d in a block of %d bytes", ErrCorrupt, caplen, blen)
			}
			return nil
		case ngTypeSimple:
			if len(blk) < off+12 {
				return nil
			}
			if orig := int(order.Uint32(blk[off+8:])); orig > MaxSnaplen {
				return fmt.Errorf("%w: packet length %d", ErrCorrupt, orig)
			}
			return nil
		}
		if len(blk) < off+blen {
			return nil // beyond the window
		}
		off += blen
	}
}

// Packets returns an iterator over the remaining packets. It stops at the
// end of the file, or after yielding an error (never io.EOF).
func (r *Reader) Packets() iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
}
