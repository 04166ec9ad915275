package events

import (
	"bytes"
	"time"
)

// FreeSWITCH and Kamailio lines. The format of a line is decided from its
// start, before any caller-controlled text: FreeSWITCH writes
//
//	2013-12-31 17:39:54.767815 [WARNING] sofia_reg.c:1478 SIP auth failure (INVITE) on sofia profile 'internal' for [1000@192.168.2.51] from ip 5.11.47.236
//	2022-08-15 16:26:27.618354 98.77% [WARNING] sofia_reg.c:3223 Can't find user [100@10.0.0.11] from 45.134.144.163
//	08-03 07:56:53.026292 [WARN] [SOFIA] [sofia_reg.c:4130] Can't find user [101@148.251.134.154] from 192.0.2.3
//	2016-09-25T18:57:58.150982 www.srv.tld freeswitch[122921]: 2016-09-25 18:57:58.150982 [WARNING] sofia_reg.c:2889 Can't find user [201@::1] from 192.0.2.1
//
// and Kamailio (syslog, journal, or its own stderr form " 9(1234) "):
//
//	Dec  1 07:00:00 pbx /usr/sbin/kamailio[1234]: NOTICE: <script>: sipwall auth failure from 192.0.2.7 port 5060 proto udp code -2 method REGISTER user 1000
//	 9(1234) ALERT: <script>: ALERT: pike blocking INVITE from sip:1000@example.com (IP:192.0.2.8:5060)
//	WARNING: pike [pike_funcs.c:212]: pike_check_req(): PIKE - BLOCKing ip 192.0.2.9, node=0x7f3c9d2a1b40
//
// A line whose start fits neither is left to the Asterisk parser. Deciding
// the format first matters: an Asterisk-looking "NOTICE[1] manager.c: …"
// placed by a caller in a FreeSWITCH user name must not be read as
// Asterisk's.

var (
	fsAuthFailure   = []byte("SIP auth failure (")
	fsAuthChallenge = []byte("SIP auth challenge (")
	fsCantFind      = []byte("Can't find user [")
	fsFromIP        = []byte(" from ip ")
	fsFrom          = []byte(" from ")
	fsSofiaProfile  = []byte(") on sofia profile '")
	fsSofiaTag      = []byte("[SOFIA] ")

	kmScript     = []byte("<script>: ")
	kmAuthFail   = []byte("sipwall auth failure from ")
	kmPikeXlog   = []byte("ALERT: pike blocking ")
	kmIPParen    = []byte("(IP:")
	kmPikeModule = []byte("pike ")
	kmPikeBlock  = []byte("PIKE - BLOCKing ip ")
	kmNode       = []byte(", node=")
	kmPort       = []byte(" port ")
)

// format is the kind of log a line comes from.
type format uint8

const (
	formatAsterisk format = iota
	formatFreeSWITCH
	formatKamailio
)

// detect decides the format of line from its start. It returns the offset
// of the part after any syslog header ("stamp host tag[pid]: ") and, for
// FreeSWITCH and Kamailio, the offset of the rest after the level within
// that part.
func detect(line []byte) (f format, off, rest int) {
	if len(line) == 0 {
		return formatAsterisk, 0, 0
	}
	c := line[0]
	if c == '[' {
		// Asterisk's "[2012-02-13 17:21:54]" or "[Jan 18 17:39:50]"; FreeSWITCH
		// without a date starts with its level.
		if p, ok := fsLevel(line); ok {
			return formatFreeSWITCH, 0, p
		}
		return formatAsterisk, 0, 0
	}
	if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' {
		// FreeSWITCH's own file: its date (or a call's UUID) first.
		if p, ok := fsPrefix(line); ok {
			return formatFreeSWITCH, 0, p
		}
	}
	off, tag := syslogHeader(line)
	b := line[off:]
	if len(b) == 0 {
		return formatAsterisk, off, 0
	}
	// In a syslog file the tag names the program, as fail2ban's filters
	// require: another program's line that happens to start like
	// FreeSWITCH's or Kamailio's is not theirs.
	switch c := b[0]; {
	case '0' <= c && c <= '9' || 'a' <= c && c <= 'f':
		if p, ok := fsPrefix(b); ok && (off == 0 || bytes.Contains(tag, tagFreeSWITCH)) {
			return formatFreeSWITCH, off, p
		}
	case c == '[':
		if p, ok := fsLevel(b); ok && (off == 0 || bytes.Contains(tag, tagFreeSWITCH)) {
			return formatFreeSWITCH, off, p
		}
	}
	if p, ok := kamailioPrefix(b); ok && (off == 0 || bytes.Contains(tag, tagKamailio)) {
		return formatKamailio, off, p
	}
	return formatAsterisk, off, 0
}

var (
	tagFreeSWITCH = []byte("freeswitch")
	tagKamailio   = []byte("kamailio")
)

// syslogHeader returns the offset after "stamp host tag: " (tag holding no
// spaces and ending in ':') and the tag, or 0.
func syslogHeader(line []byte) (int, []byte) {
	c := line[0]
	if !('0' <= c && c <= '9') && !('A' <= c && c <= 'Z') {
		return 0, nil
	}
	// The stamp ends at the first space after its clock.
	w := line[:min(len(line), 40)]
	k := bytes.IndexByte(w, ':')
	if k < 0 {
		return 0, nil
	}
	sp := bytes.IndexByte(w[k:], ' ')
	if sp < 0 {
		return 0, nil
	}
	end := k + sp
	if _, _, ok := parseStamp(line[:end], time.UTC); !ok {
		return 0, nil
	}
	rest := line[end+1:]
	h := bytes.IndexByte(rest[:min(len(rest), 256)], ' ')
	if h <= 0 {
		return 0, nil
	}
	tag := rest[h+1:]
	t := bytes.IndexByte(tag[:min(len(tag), 128)], ' ')
	if t < 2 || tag[t-1] != ':' {
		return 0, nil
	}
	return end + 1 + h + 1 + t + 1, tag[:t]
}

// fsLevels are FreeSWITCH's level names as it brackets them.
var fsLevels = [...]string{"DEBUG", "INFO", "NOTICE", "WARNING", "WARN", "ERR", "ERROR", "CRIT", "ALERT", "CONSOLE"}

// fsLevel reports whether b starts with "[LEVEL] " and returns the offset
// after it.
func fsLevel(b []byte) (int, bool) {
	if len(b) < 4 || b[0] != '[' {
		return 0, false
	}
	e := bytes.IndexByte(b[1:min(len(b), 10)], ']')
	if e < 0 || e+2 >= len(b) || b[e+2] != ' ' {
		return 0, false
	}
	for _, lv := range fsLevels {
		if string(b[1:e+1]) == lv {
			return e + 3, true
		}
	}
	return 0, false
}

// fsPrefix parses "[uuid ][[YYYY-]MM-DD HH:MM:SS.ffffff ][NN.NN% ][LEVEL] "
// and returns the offset after the level.
func fsPrefix(b []byte) (int, bool) {
	p := 0
	// A call's lines start with its UUID.
	if len(b) > 37 && b[8] == '-' && b[13] == '-' && b[18] == '-' && b[23] == '-' && b[36] == ' ' {
		p = 37
	}
	if q, ok := fsDate(b[p:]); ok {
		p += q
	}
	// Newer releases write the idle CPU: "98.77% ".
	if i := p; i < len(b) && '0' <= b[i] && b[i] <= '9' {
		for i < len(b) && i-p < 8 && ('0' <= b[i] && b[i] <= '9' || b[i] == '.') {
			i++
		}
		if i+1 < len(b) && b[i] == '%' && b[i+1] == ' ' {
			p = i + 2
		}
	}
	q, ok := fsLevel(b[p:])
	if !ok {
		return 0, false
	}
	return p + q, true
}

// fsDate returns the length of "[YYYY-]MM-DD HH:MM:SS[.ffffff] " at the
// start of b.
func fsDate(b []byte) (int, bool) {
	p := 0
	if len(b) > 5 && b[4] == '-' {
		p = 5
	}
	if len(b) < p+15 || b[p+2] != '-' || b[p+5] != ' ' {
		return 0, false
	}
	_, _, _, _, rest, ok := parseClock(b[p+6:])
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, false
	}
	return len(b) - len(rest) + 1, true
}

// fsTime reads the FreeSWITCH date of the line (after the syslog header and
// UUID); a date without year gets year 0 and noYear.
func fsTime(b []byte, loc *time.Location) (time.Time, bool) {
	if len(b) > 37 && b[8] == '-' && b[36] == ' ' {
		b = b[37:]
	}
	n, ok := fsDate(b)
	if !ok {
		return time.Time{}, false
	}
	d := b[:n-1]
	if d[2] == '-' { // no year
		mo, ok1 := num(d[0:2])
		dd, ok2 := num(d[3:5])
		h, mi, s, ns, _, ok3 := parseClock(d[6:])
		if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || dd < 1 || dd > 31 {
			return time.Time{}, false
		}
		return time.Date(0, time.Month(mo), dd, h, mi, s, ns, loc), true
	}
	t, _, ok := parseStamp(d, loc)
	if !ok {
		return time.Time{}, false
	}
	return t, false
}

// freeSWITCH classifies a FreeSWITCH line; b starts after any syslog
// header, and its level ends at p.
func freeSWITCH(b []byte, p int, loc *time.Location) (Event, Result, string) {
	m := b[p:]
	if bytes.HasPrefix(m, fsSofiaTag) {
		m = m[len(fsSofiaTag):]
	}
	// Source: "sofia_reg.c:1478 " or "[sofia_reg.c:4130] ".
	br := len(m) > 0 && m[0] == '['
	if br {
		m = m[1:]
	}
	c := sourceColon(m, 0)
	if c < 0 {
		return Event{}, NoMatch, ""
	}
	d := c + 1
	for d < len(m) && '0' <= m[d] && m[d] <= '9' {
		d++
	}
	if br {
		if d >= len(m) || m[d] != ']' {
			return Event{}, NoMatch, ""
		}
		d++
	}
	if d == c+1 || d >= len(m) || m[d] != ' ' {
		return Event{}, NoMatch, ""
	}
	ev, r, why := fsMessage(m[d+1:])
	if r != NoMatch {
		ev.Time, ev.NoYear = fsTime(b, loc)
	}
	return ev, r, why
}

// fsMessage: sofia_reg.c
//
//	SIP auth failure (REGISTER) on sofia profile '<profile>' for [<user>@<host>] from ip <addr>
//	Can't find user [<user>@<host>] from <addr>
//
// The user and host are the caller's (To or From URI); FreeSWITCH's
// network address closes the line, so it is read from the end.
// "SIP auth challenge" is each first, unauthenticated request (every
// registration of every phone): it is not a failure.
func fsMessage(m []byte) (Event, Result, string) {
	switch {
	case bytes.HasPrefix(m, fsAuthFailure):
		const k = FreeSWITCHAuthFailure
		if !bytes.Contains(m[:min(len(m), 64)], fsSofiaProfile) {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		f := bytes.LastIndex(m, fsFromIP)
		if f < 0 || m[f-1] != ']' {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		return hostPortEvent(k, m[f+len(fsFromIP):])
	case bytes.HasPrefix(m, fsCantFind):
		const k = FreeSWITCHUserNotFound
		f := bytes.LastIndex(m, fsFrom)
		if f < len(fsCantFind) || m[f-1] != ']' {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		return hostPortEvent(k, m[f+len(fsFrom):])
	case bytes.HasPrefix(m, fsAuthChallenge):
		return Event{}, NoMatch, ""
	}
	return Event{}, NoMatch, ""
}

// kmLevels are Kamailio's level names.
var kmLevels = [...]string{"ALERT", "BUG", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// kamailioPrefix parses "[ N(pid) ]LEVEL: " and returns the offset after
// it.
func kamailioPrefix(b []byte) (int, bool) {
	p := 0
	for p < len(b) && p < 3 && b[p] == ' ' {
		p++
	}
	if p < len(b) && '0' <= b[p] && b[p] <= '9' {
		i := p
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i >= len(b) || b[i] != '(' {
			return 0, false
		}
		j := i + 1
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == i+1 || j+1 >= len(b) || b[j] != ')' || b[j+1] != ' ' {
			return 0, false
		}
		p = j + 2
	}
	c := bytes.IndexByte(b[p:min(len(b), p+10)], ':')
	if c < 0 || p+c+1 >= len(b) || b[p+c+1] != ' ' {
		return 0, false
	}
	for _, lv := range kmLevels {
		if string(b[p:p+c]) == lv {
			return p + c + 2, true
		}
	}
	return 0, false
}

// kamailio classifies a Kamailio line; b starts after any syslog header,
// and its level ends at p.
func kamailio(b []byte, p int) (Event, Result, string) {
	m := b[p:]
	switch {
	case bytes.HasPrefix(m, kmScript):
		return kamailioScript(m[len(kmScript):])
	case bytes.HasPrefix(m, kmPikeModule):
		// "pike [pike_funcs.c:212]: pike_check_req(): PIKE - BLOCKing ip …":
		// the module prefix is Kamailio's; the address is all that follows.
		i := bytes.Index(m[:min(len(m), 128)], kmPikeBlock)
		if i < 0 {
			return Event{}, NoMatch, ""
		}
		a := m[i+len(kmPikeBlock):]
		if n := bytes.Index(a, kmNode); n >= 0 {
			a = a[:n]
		}
		return hostPortEvent(KamailioPikeBlocked, a)
	}
	return Event{}, NoMatch, ""
}

// kamailioScript: xlog lines of kamailio.cfg
//
//	sipwall auth failure from <$si> port <$sp> …      (the auth route, docs/guard.md)
//	ALERT: pike blocking <$rm> from <$fu> (IP:<$si>:<$sp>)   (the stock REQINIT route)
//
// The first starts with the address; the second ends with it, after the
// caller's method and From URI.
func kamailioScript(m []byte) (Event, Result, string) {
	switch {
	case bytes.HasPrefix(m, kmAuthFail):
		const k = KamailioAuthFailed
		a := m[len(kmAuthFail):]
		sp := bytes.IndexByte(a, ' ')
		if sp < 0 {
			sp = len(a)
		}
		addr, ok := parseIP(a[:sp])
		if !ok {
			return Event{Kind: k}, Rejected, WhyBadAddress
		}
		ev := Event{Kind: k, Addr: addr}
		if rest := a[sp:]; bytes.HasPrefix(rest, kmPort) {
			rest = rest[len(kmPort):]
			e := bytes.IndexByte(rest, ' ')
			if e < 0 {
				e = len(rest)
			}
			if port, ok := parsePort(rest[:e]); ok {
				ev.Port = port
			}
		}
		return ev, Matched, ""
	case bytes.HasPrefix(m, kmPikeXlog):
		const k = KamailioPikeBlocked
		if m[len(m)-1] != ')' {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		i := bytes.LastIndex(m, kmIPParen)
		if i < 0 {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		a := m[i+len(kmIPParen) : len(m)-1]
		c := bytes.LastIndexByte(a, ':')
		if c < 0 {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		addr, ok := parseIP(a[:c])
		if !ok {
			return Event{Kind: k}, Rejected, WhyBadAddress
		}
		port, ok := parsePort(a[c+1:])
		if !ok {
			return Event{Kind: k}, Rejected, WhyMalformed
		}
		return Event{Kind: k, Addr: addr, Port: port}, Matched, ""
	}
	return Event{}, NoMatch, ""
}
