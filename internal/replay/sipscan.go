package replay

import (
	"bytes"

	"github.com/sipwall/sipwall/internal/sip"
)

// sipRequest is what the report needs of a SIP request: its method and
// User-Agent.
type sipRequest struct {
	method    []byte
	userAgent []byte
	register  bool
}

// scanRequest reads the request line and the User-Agent header of payload
// without parsing the whole message (the report needs nothing else, and
// sip.Parse's full framing would cost as much as the ruleset itself).
// It answers as sip.Parse would; anything unusual on the way (a folded
// header line, a bare LF, a second User-Agent) is handed to sip.Parse,
// whose answer is used. ok is false when payload is not a request.
func scanRequest(payload []byte, m *sip.Message) (req sipRequest, ok bool) {
	nl := bytes.IndexByte(payload, '\n')
	if nl <= 0 || payload[nl-1] != '\r' {
		return parseRequest(payload, m)
	}
	line := payload[:nl-1]
	sp := bytes.IndexByte(line, ' ')
	last := bytes.LastIndexByte(line, ' ')
	if sp <= 0 || last <= sp+1 || bytes.IndexByte(line[sp+1:last], ' ') >= 0 || bytes.IndexByte(line, '\t') >= 0 {
		return parseRequest(payload, m)
	}
	version := line[last+1:]
	if len(version) <= 4 || !sip.HasPrefixFold(version, "SIP/") || sip.HasPrefixFold(line, "SIP/") {
		return parseRequest(payload, m)
	}
	req.method = line[:sp]
	req.register = string(req.method) == "REGISTER"
	rest := payload[nl+1:]
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 || nl == 0 || rest[nl-1] != '\r' {
			return parseRequest(payload, m)
		}
		h := rest[:nl-1]
		next := rest[nl+1:]
		if len(h) == 0 {
			break // end of the headers
		}
		if h[0] == ' ' || h[0] == '\t' || len(next) > 0 && (next[0] == ' ' || next[0] == '\t') {
			return parseRequest(payload, m) // a folded line
		}
		if h[0]|0x20 == 'u' && len(h) > 10 && sip.HasPrefixFold(h, "user-agent") {
			colon := 10
			for colon < len(h) && (h[colon] == ' ' || h[colon] == '\t') {
				colon++
			}
			if colon < len(h) && h[colon] == ':' {
				if req.userAgent != nil {
					return parseRequest(payload, m) // a second one
				}
				v := h[colon+1:]
				for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
					v = v[1:]
				}
				for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
					v = v[:len(v)-1]
				}
				req.userAgent = v
			}
		}
		rest = next
	}
	return req, true
}

func parseRequest(payload []byte, m *sip.Message) (sipRequest, bool) {
	_ = sip.Parse(payload, m) // a broken framing still fills the start line
	if !m.Request || len(m.MethodName) == 0 {
		return sipRequest{}, false
	}
	return sipRequest{method: m.MethodName, userAgent: m.UserAgent(), register: m.Method == sip.MethodREGISTER}, true
}

// foldFinder finds a string in a payload ignoring ASCII case, as
// sip.ContainsFold does, but skips from one occurrence of the needle's
// first byte without a case (a dot, a dash, a digit) to the next with
// bytes.IndexByte, which is much faster than comparing at every offset.
type foldFinder struct {
	needle string
	pivot  int // index in needle of a byte without case, or -1
}

func newFoldFinder(needle string) foldFinder {
	f := foldFinder{needle: needle, pivot: -1}
	for i := 0; i < len(needle); i++ {
		if c := needle[i] | 0x20; c < 'a' || c > 'z' {
			f.pivot = i
			break
		}
	}
	return f
}

func (f *foldFinder) in(hay []byte) bool {
	n := len(f.needle)
	if f.pivot < 0 || n == 0 {
		return sip.ContainsFold(hay, f.needle)
	}
	c := f.needle[f.pivot]
	for i := f.pivot; i+n-f.pivot <= len(hay); {
		j := bytes.IndexByte(hay[i:len(hay)-(n-f.pivot-1)], c)
		if j < 0 {
			return false
		}
		start := i + j - f.pivot
		if sip.EqualFold(hay[start:start+n], f.needle) {
			return true
		}
		i += j + 1
	}
	return false
}
