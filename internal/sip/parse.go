package sip

import (
	"bytes"
	"errors"
)

// Errors Parse returns. Even with an error, the Message holds the fields
// read before the problem (and, for ErrIncomplete, ErrContentLength and
// ErrShortBody, all of the headers).
var (
	// ErrEmpty: the payload is empty.
	ErrEmpty = errors.New("sip: empty payload")
	// ErrKeepAlive: the payload holds only CR and LF bytes (a RFC 5626
	// keep-alive or its answer).
	ErrKeepAlive = errors.New("sip: keep-alive (CRLF only)")
	// ErrNotSIP: the first line is neither a SIP request line nor a SIP
	// status line.
	ErrNotSIP = errors.New("sip: not a SIP start line")
	// ErrIncomplete: the payload ends before the empty line that ends the
	// headers.
	ErrIncomplete = errors.New("sip: headers not terminated")
	// ErrContentLength: Content-Length is not a number, or two
	// Content-Length headers disagree.
	ErrContentLength = errors.New("sip: unusable Content-Length")
	// ErrShortBody: the payload holds fewer body bytes than Content-Length
	// says.
	ErrShortBody = errors.New("sip: body shorter than Content-Length")
)

// maxContentLength bounds the Content-Length value Parse accepts; larger
// values are ErrContentLength.
const maxContentLength = 1 << 24

// Parse scans one SIP message from the start of payload into m,
// overwriting all of m. It never allocates and never panics. Leading CR and
// LF bytes are skipped (RFC 3261 §7.5). See the package documentation for
// what is an error and what is an anomaly.
func Parse(payload []byte, m *Message) error {
	*m = Message{ContentLength: -1}
	if len(payload) == 0 {
		return ErrEmpty
	}
	pos := 0
	for pos < len(payload) && (payload[pos] == '\r' || payload[pos] == '\n') {
		pos++
	}
	if pos == len(payload) {
		m.Len = pos
		return ErrKeepAlive
	}
	line, next, ok := m.nextLine(payload, pos)
	if !ok {
		// A start line alone, without even its line end.
		line = payload[pos:]
		next = len(payload)
	}
	if err := m.parseStartLine(line); err != nil {
		return err
	}
	pos = next
	var err error
	var clSeen []byte
	for {
		if pos >= len(payload) {
			err = ErrIncomplete
			break
		}
		line, next, ok := m.nextLine(payload, pos)
		if !ok {
			// The last header without a line end: record it, but the
			// headers did not end.
			m.header(payload[pos:], &clSeen, &err)
			pos = len(payload)
			err = ErrIncomplete
			break
		}
		if len(line) == 0 {
			pos = next
			m.HeaderLen = pos
			break
		}
		// Gather continuation lines.
		end := len(line) + pos // end of the logical line within payload
		for next < len(payload) && (payload[next] == ' ' || payload[next] == '\t') {
			cont, after, ok := m.nextLine(payload, next)
			if !ok {
				end = len(payload)
				next = len(payload)
				break
			}
			m.Folded = true
			end = next + len(cont)
			next = after
		}
		m.header(payload[pos:end], &clSeen, &err)
		pos = next
	}
	m.finish()
	if m.HeaderLen == 0 {
		m.Len = len(payload)
		return err
	}
	rest := payload[m.HeaderLen:]
	switch {
	case m.ContentLength < 0:
		m.Body = rest
	case m.ContentLength > len(rest):
		m.Body = rest
		if err == nil {
			err = ErrShortBody
		}
	default:
		m.Body = rest[:m.ContentLength]
	}
	m.Len = m.HeaderLen + len(m.Body)
	return err
}

// nextLine returns the line starting at pos without its line end, and the
// position after the line end. ok is false when no LF follows.
func (m *Message) nextLine(b []byte, pos int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, len(b), false
	}
	line = b[pos : pos+i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	} else {
		m.BareLF = true
	}
	return line, pos + i + 1, true
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimLWS(b []byte) []byte {
	for len(b) > 0 && isLWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isLWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// tokenChars marks the bytes of an RFC 3261 token.
var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-.!%*_+`'~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// isSIPVersion reports whether b looks like "SIP/" followed by something.
func isSIPVersion(b []byte) bool {
	return len(b) > 4 && HasPrefixFold(b, "SIP/")
}

func (m *Message) parseStartLine(line []byte) error {
	if HasPrefixFold(line, "SIP/") {
		// A method is a token and cannot hold '/': a status line.
		return m.parseStatusLine(line)
	}
	// Request-Line: Method SP Request-URI SP SIP-Version.
	i := 0
	for i < len(line) && !isWS(line[i]) {
		i++
	}
	method := line[:i]
	j := len(line)
	trailing := false
	for j > i && isWS(line[j-1]) {
		j--
		trailing = true
	}
	k := j
	for k > i && !isWS(line[k-1]) {
		k--
	}
	version := line[k:j]
	if len(method) == 0 || k <= i || !isSIPVersion(version) {
		return ErrNotSIP
	}
	uri := line[i:k]
	lead := 0
	for lead < len(uri) && isWS(uri[lead]) {
		lead++
	}
	tail := len(uri)
	for tail > lead && isWS(uri[tail-1]) {
		tail--
	}
	if lead != 1 || len(uri)-tail != 1 || trailing {
		m.Anomalies |= AnomalyStartLine
	}
	uri = uri[lead:tail]
	if len(uri) == 0 {
		return ErrNotSIP
	}
	for _, c := range uri {
		if isWS(c) {
			m.Anomalies |= AnomalyStartLine
			break
		}
	}
	if uri[0] == '<' {
		m.Anomalies |= AnomalyStartLine
	}
	if !isToken(method) {
		m.Anomalies |= AnomalyMethod
	}
	m.Request = true
	m.MethodName = method
	m.Method = LookupMethod(method)
	m.RequestURI = uri
	m.Version = version
	if string(version) != "SIP/2.0" {
		m.Anomalies |= AnomalyVersion
	}
	return nil
}

func (m *Message) parseStatusLine(line []byte) error {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		i = len(line)
	}
	m.Version = line[:i]
	if string(m.Version) != "SIP/2.0" {
		m.Anomalies |= AnomalyVersion
	}
	rest := line[i:]
	for len(rest) > 0 && isWS(rest[0]) {
		rest = rest[1:]
	}
	j := 0
	for j < len(rest) && !isWS(rest[j]) {
		j++
	}
	code := rest[:j]
	if len(code) == 3 && code[0] >= '1' && code[0] <= '6' && isDigit(code[1]) && isDigit(code[2]) {
		m.StatusCode = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	} else {
		m.Anomalies |= AnomalyStatusCode
	}
	rest = rest[j:]
	if len(rest) > 0 {
		rest = rest[1:] // the SP before the reason phrase
	}
	m.Reason = rest
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// header records one logical header line (continuations included).
func (m *Message) header(line []byte, clSeen *[]byte, err *error) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		m.Anomalies |= AnomalyHeaderLine
		return
	}
	name := line[:colon]
	for len(name) > 0 && isWS(name[len(name)-1]) {
		name = name[:len(name)-1]
	}
	if !isToken(name) {
		m.Anomalies |= AnomalyHeaderLine
		return
	}
	m.HeaderLines++
	h, ok := lookupHeader(name)
	if !ok {
		return
	}
	value := trimLWS(line[colon+1:])
	if m.Counts[h] < 255 {
		m.Counts[h]++
	}
	if m.Counts[h] > 1 {
		switch h {
		case HeaderFrom, HeaderTo, HeaderCallID, HeaderCSeq, HeaderMaxForwards:
			m.Anomalies |= AnomalyDuplicate
		case HeaderContentLength:
			m.Anomalies |= AnomalyDuplicate
			if !bytes.Equal(value, *clSeen) && *err == nil {
				*err = ErrContentLength
				m.ContentLength = -1
			}
		}
		return
	}
	m.Headers[h] = value
	switch h {
	case HeaderContentLength:
		*clSeen = value
		n, ok := parseUint(value, maxContentLength)
		if !ok {
			if *err == nil {
				*err = ErrContentLength
			}
			return
		}
		m.ContentLength = int(n)
	}
}

// parseUint parses a decimal number no larger than max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// finish checks the recorded headers against each other.
func (m *Message) finish() {
	if cs := m.Headers[HeaderCSeq]; cs != nil {
		i := 0
		for i < len(cs) && isDigit(cs[i]) {
			i++
		}
		n, ok := parseUint(cs[:i], 1<<31-1)
		method := trimLWS(cs[i:])
		if !ok || i == len(cs) || !isLWS(cs[i]) || !isToken(method) {
			m.Anomalies |= AnomalyCSeq
		}
		m.CSeqNum = uint32(n)
		m.CSeqMethod = method
		if m.Request {
			if !bytes.Equal(method, m.MethodName) {
				m.Anomalies |= AnomalyCSeq
			}
		} else {
			m.MethodName = method
			m.Method = LookupMethod(method)
		}
	}
	for _, h := range [...]Header{HeaderTo, HeaderFrom, HeaderCallID, HeaderCSeq, HeaderVia} {
		if m.Counts[h] == 0 {
			m.Anomalies |= AnomalyMissing
			break
		}
	}
	if mf := m.Headers[HeaderMaxForwards]; mf != nil {
		if _, ok := parseUint(mf, 255); !ok {
			m.Anomalies |= AnomalyScalar
		}
	}
	if ex := m.Headers[HeaderExpires]; ex != nil {
		if _, ok := parseUint(ex, 1<<32-1); !ok {
			m.Anomalies |= AnomalyScalar
		}
	}
	for _, h := range [...]Header{HeaderFrom, HeaderTo, HeaderContact} {
		v := m.Headers[h]
		if !quotesBalanced(v) {
			m.Anomalies |= AnomalyQuote
		} else if !nameAddrClean(v) {
			m.Anomalies |= AnomalyNameAddr
		}
	}
}

// quotesBalanced reports whether every quoted string in v is closed.
func quotesBalanced(v []byte) bool {
	in := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			in = !in
		case '\\':
			if in {
				i++
			}
		}
	}
	return !in
}

// nameAddrClean checks the display name and the <> of a name-addr: an
// unquoted display name is tokens separated by whitespace, and no
// whitespace follows '<' or precedes '>'.
func nameAddrClean(v []byte) bool {
	lt := bytes.IndexByte(v, '<')
	if lt < 0 {
		return true
	}
	if dn := v[:lt]; bytes.IndexByte(dn, '"') < 0 {
		for _, c := range dn {
			if !tokenChars[c] && !isLWS(c) {
				return false
			}
		}
	}
	if lt+1 < len(v) && isLWS(v[lt+1]) {
		return false
	}
	gt := bytes.IndexByte(v[lt:], '>')
	return gt < 0 || !isLWS(v[lt+gt-1])
}

// lookupHeader maps a header name (long or compact form, any case) to a
// recorded Header.
func lookupHeader(name []byte) (Header, bool) {
	if len(name) == 1 {
		switch name[0] | 0x20 {
		case 'f':
			return HeaderFrom, true
		case 't':
			return HeaderTo, true
		case 'v':
			return HeaderVia, true
		case 'i':
			return HeaderCallID, true
		case 'm':
			return HeaderContact, true
		case 'l':
			return HeaderContentLength, true
		case 'c':
			return HeaderContentType, true
		case 's':
			return HeaderSubject, true
		case 'o':
			return HeaderEvent, true
		case 'k':
			return HeaderSupported, true
		}
		return 0, false
	}
	var cands [2]Header
	n := 0
	switch len(name) {
	case 2:
		cands[0], n = HeaderTo, 1
	case 3:
		cands[0], n = HeaderVia, 1
	case 4:
		cands[0], n = HeaderFrom, 1
		if name[0]|0x20 == 'c' {
			cands[0] = HeaderCSeq
		}
	case 5:
		cands[0], n = HeaderEvent, 1
	case 6:
		cands[0], n = HeaderServer, 1
	case 7:
		cands, n = [2]Header{HeaderCallID, HeaderContact}, 2
		if name[0]|0x20 == 'e' {
			cands[0], n = HeaderExpires, 1
		} else if name[0]|0x20 == 's' {
			cands[0], n = HeaderSubject, 1
		}
	case 9:
		cands[0], n = HeaderSupported, 1
	case 10:
		cands[0], n = HeaderUserAgent, 1
	case 12:
		cands, n = [2]Header{HeaderContentType, HeaderMaxForwards}, 2
	case 13:
		cands[0], n = HeaderAuthorization, 1
	case 14:
		cands[0], n = HeaderContentLength, 1
	}
	for _, h := range cands[:n] {
		if EqualFold(name, headerNames[h]) {
			return h, true
		}
	}
	return 0, false
}
