package packet

import "errors"

// Error kinds wrapped by every *DecodeError; test with errors.Is.
var (
	// ErrTruncated means a header is cut short by the end of the frame.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed means a header's fields contradict each other or the
	// frame (bad version, header length below minimum, ...).
	ErrMalformed = errors.New("malformed")
	// ErrUnsupported means the link type is not one Decode understands.
	ErrUnsupported = errors.New("unsupported")
)

// DecodeError says which layer of a frame failed to decode and why. Decode
// returns only preallocated *DecodeError values, so a failing decode does
// not allocate either.
type DecodeError struct {
	Layer  Layer
	Kind   error // ErrTruncated, ErrMalformed or ErrUnsupported
	Detail string
}

func (e *DecodeError) Error() string {
	return "packet: " + e.Layer.String() + ": " + e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns the error kind.
func (e *DecodeError) Unwrap() error { return e.Kind }

func newErr(l Layer, kind error, detail string) *DecodeError {
	return &DecodeError{Layer: l, Kind: kind, Detail: detail}
}

// The errors Decode returns. They are created once and never modified.
var (
	errLinkUnsupported = newErr(LayerLink, ErrUnsupported, "unknown link type")
	errEthTrunc        = newErr(LayerEthernet, ErrTruncated, "frame shorter than the 14-byte header")
	errVLANTrunc       = newErr(LayerVLAN, ErrTruncated, "frame ends inside an 802.1Q tag")
	errVLANDepth       = newErr(LayerVLAN, ErrMalformed, "more than 8 stacked VLAN tags")
	errSLLTrunc        = newErr(LayerSLL, ErrTruncated, "frame shorter than the 16-byte header")
	errSLL2Trunc       = newErr(LayerSLL2, ErrTruncated, "frame shorter than the 20-byte header")
	errLoopTrunc       = newErr(LayerLoopback, ErrTruncated, "frame shorter than the 4-byte header")
	errRawEmpty        = newErr(LayerLink, ErrTruncated, "empty raw IP frame")
	errRawVersion      = newErr(LayerLink, ErrMalformed, "raw IP frame with IP version neither 4 nor 6")
	errIPv4Trunc       = newErr(LayerIPv4, ErrTruncated, "fewer than 20 bytes or header length bytes")
	errIPv4Version     = newErr(LayerIPv4, ErrMalformed, "version is not 4")
	errIPv4IHL         = newErr(LayerIPv4, ErrMalformed, "header length below 20 bytes")
	errIPv4TotalLen    = newErr(LayerIPv4, ErrMalformed, "total length below header length")
	errIPv6Trunc       = newErr(LayerIPv6, ErrTruncated, "fewer than 40 bytes")
	errIPv6Version     = newErr(LayerIPv6, ErrMalformed, "version is not 6")
	errIPv6ExtTrunc    = newErr(LayerIPv6Ext, ErrTruncated, "extension header cut short")
	errTCPTrunc        = newErr(LayerTCP, ErrTruncated, "segment shorter than its header")
	errTCPOffset       = newErr(LayerTCP, ErrMalformed, "data offset below 20 bytes")
	errUDPTrunc        = newErr(LayerUDP, ErrTruncated, "datagram shorter than the 8-byte header")
	errUDPLength       = newErr(LayerUDP, ErrMalformed, "length field below 8")
	errICMPTrunc       = newErr(LayerICMP, ErrTruncated, "message shorter than 4 bytes")
	errICMPv6Trunc     = newErr(LayerICMPv6, ErrTruncated, "message shorter than 4 bytes")
)
