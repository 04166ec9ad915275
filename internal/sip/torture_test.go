package sip

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const tortureDir = "../../../shared/corpus/sip-torture-rfc4475"

// tortureCase is the expected outcome for one RFC 4475 message. The RFC
// section and what it asks of a receiver are in the comment; what a
// firewall-grade scanner does with it is in the fields: it never refuses
// what it can read, it reports the fields and flags what the RFC says is
// wrong, when the defect is in what it scans.
type tortureCase struct {
	file      string
	err       error
	request   bool
	method    Method
	name      string // MethodName
	uri       string
	status    int
	anomalies Anomaly
	header    Header // one header to check
	value     string
	cl        int // ContentLength
	body      int // len(Body)
	folded    bool
}

var tortureCases = []tortureCase{
	// §3.1.1.1 A short tortuous INVITE: valid; whitespace, folding, case,
	// compact forms everywhere. All fields found; folding kept intact.
	{file: "valid/wsinv.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:vivekg@chair-dnrc.example.com;unknownparam",
		header: HeaderVia, value: "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw", cl: 150, body: 150, folded: true},
	// §3.1.1.2 Wide range of valid characters: valid; unknown method.
	{file: "valid/intmeth.dat", request: true, method: MethodUnknown, name: "!interesting-Method0123456789_*+`.%indeed'~",
		uri:    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
		header: HeaderCallID, value: "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", cl: 0},
	// §3.1.1.3 Valid use of the % escaping mechanism: valid.
	{file: "valid/esc01.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:sips%3Auser%40example.com@example.net",
		header: HeaderTo, value: "sip:%75se%72@example.com", cl: 150, body: 150, folded: true},
	// §3.1.1.4 Escaped nulls in URIs: valid.
	{file: "valid/escnull.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderContact, value: "<sip:%00@host5.example.com>", cl: 0},
	// §3.1.1.5 Use of % when it is not an escape: valid; the method is
	// the unknown token RE%47IST%45R, not REGISTER.
	{file: "valid/esc02.dat", request: true, method: MethodUnknown, name: "RE%47IST%45R", uri: "sip:registrar.example.com",
		header: HeaderVia, value: "SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234", cl: 0},
	// §3.1.1.6 Message with no LWS between display name and <: valid.
	{file: "valid/lwsdisp.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com",
		header: HeaderFrom, value: "caller<sip:caller@example.com>;tag=323", cl: 0},
	// §3.1.1.7 Long values in header fields: valid.
	{file: "valid/longreq.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderCSeq, value: "3882340 INVITE", cl: 150, body: 150},
	// §3.1.1.8 Extra trailing octets in a UDP datagram: valid; the first
	// message is the REGISTER and the INVITE after it is ignored (Len).
	{file: "valid/dblreq.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderCallID, value: "dblreq.0ha0isndaksdj99sdfafnl3lk233412", cl: 0},
	// §3.1.1.9 Semicolon-separated parameters in URI user part: valid.
	{file: "valid/semiuri.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user;par=u%40example.net@example.com",
		header: HeaderTo, value: "sip:j_user@example.com", cl: 0, folded: true},
	// §3.1.1.10 Varied and unknown transport types: valid.
	{file: "valid/transports.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com",
		header: HeaderVia, value: "SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw", cl: 0},
	// §3.1.1.11 Multipart MIME message: valid.
	{file: "valid/mpart01.dat", request: true, method: MethodMESSAGE, name: "MESSAGE", uri: "sip:kumiko@example.org",
		header: HeaderUserAgent, value: "SIPimp.org/0.2.5 (curses)", cl: 553, body: 553},
	// §3.1.1.12 Unusual reason phrase: valid response.
	{file: "valid/unreason.dat", method: MethodINVITE, name: "INVITE", status: 200,
		header: HeaderCallID, value: "unreason.1234ksdfak3j2erwedfsASdf", cl: 154, body: 154},
	// §3.1.1.13 Empty reason phrase: valid response.
	{file: "valid/noreason.dat", method: MethodINVITE, name: "INVITE", status: 100,
		header: HeaderCallID, value: "noreason.asndj203insdf99223ndf", cl: 0},

	// §3.1.2.1 Extraneous header field separators: invalid (400). The
	// empty Via/Contact parameters are below what the scanner checks:
	// reported as read, not flagged.
	{file: "invalid/badinv01.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderVia, value: "SIP/2.0/UDP 192.0.2.15;;,;,,", cl: 152, body: 152},
	// §3.1.2.2 Content-Length larger than message: invalid (UDP: discard).
	// ErrShortBody, headers reported, Body holds what is there.
	{file: "invalid/clerr.dat", err: ErrShortBody, request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderCallID, value: "clerr.0ha0isndaksdjweiafasdk3", cl: 9999, body: 154},
	// §3.1.2.3 Negative Content-Length: invalid (400). ErrContentLength.
	{file: "invalid/ncl.dat", err: ErrContentLength, request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderContentLength, value: "-999", cl: -1, body: 152},
	// §3.1.2.4 Request scalar fields with overlarge values: invalid (400).
	// CSeq number and Max-Forwards/Expires flagged.
	{file: "invalid/scalar02.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com", anomalies: AnomalyCSeq | AnomalyScalar,
		header: HeaderMaxForwards, value: "300", cl: 0, folded: true},
	// §3.1.2.5 Response scalar fields with overlarge values: invalid
	// (discard). The CSeq number is flagged.
	{file: "invalid/scalarlg.dat", method: MethodOPTIONS, name: "OPTIONS", status: 503, anomalies: AnomalyCSeq,
		header: HeaderCSeq, value: "9292394834772304023312 OPTIONS", cl: 0},
	// §3.1.2.6 Unterminated quoted string in display name: invalid (400).
	{file: "invalid/quotbal.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com", anomalies: AnomalyQuote,
		header: HeaderTo, value: "\"Mr. J. User <sip:j.user@example.com>", cl: 152, body: 152},
	// §3.1.2.7 <> enclosing Request-URI: invalid (400).
	{file: "invalid/ltgtruri.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "<sip:user@example.com>", anomalies: AnomalyStartLine,
		header: HeaderTo, value: "sip:user@example.com", cl: 159, body: 159},
	// §3.1.2.8 Malformed SIP Request-URI (embedded LWS): invalid (400).
	// The URI is reported with the LWS.
	{file: "invalid/lwsruri.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com; lr", anomalies: AnomalyStartLine,
		header: HeaderCSeq, value: "2130706432 INVITE", cl: 159, body: 159},
	// §3.1.2.9 Multiple SP separating Request-Line elements: invalid (400).
	{file: "invalid/lwsstart.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com", anomalies: AnomalyStartLine,
		header: HeaderCSeq, value: "1893884 INVITE", cl: 150, body: 150},
	// §3.1.2.10 SP characters at end of Request-Line: invalid (400).
	{file: "invalid/trws.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:remote-target@example.com", anomalies: AnomalyStartLine,
		header: HeaderVia, value: "SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093", cl: 0},
	// §3.1.2.11 Escaped headers in SIP Request-URI: invalid (400). URI
	// header semantics are beyond the scanner: reported, not flagged.
	{file: "invalid/escruri.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com?Route=%3Csip:example.com%3E",
		header: HeaderCallID, value: "escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5", cl: 150, body: 150},
	// §3.1.2.12 Invalid time zone in Date header field: a proxy forwards
	// it; the Date header is not scanned.
	{file: "invalid/baddate.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderCallID, value: "baddate.239423mnsadf3j23lj42--sedfnm234", cl: 150, body: 150},
	// §3.1.2.13 Failure to enclose name-addr URI in <>: invalid (400).
	// Contact reported as read; URI headers in Contact are not flagged.
	{file: "invalid/regbadct.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderContact, value: "sip:user@example.com?Route=%3Csip:sip.example.com%3E", cl: 0},
	// §3.1.2.14 Spaces within addr-spec: invalid (400).
	{file: "invalid/badaspec.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.org", anomalies: AnomalyNameAddr,
		header: HeaderTo, value: "\"Watson, Thomas\" < sip:t.watson@example.org >", cl: 0},
	// §3.1.2.15 Non-token characters in display name: invalid (400). The
	// corpus copy lacks the final empty line: ErrIncomplete as well.
	{file: "invalid/baddn.dat", err: ErrIncomplete, request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:t.watson@example.org", anomalies: AnomalyNameAddr,
		header: HeaderFrom, value: "Bell, Alexander <sip:a.g.bell@example.com>;tag=43", cl: 0},
	// §3.1.2.16 Unknown protocol version: invalid (505).
	{file: "invalid/badvers.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:t.watson@example.org", anomalies: AnomalyVersion,
		header: HeaderVia, value: "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw", cl: 0},
	// §3.1.2.17 Start line and CSeq method mismatch: invalid (400).
	{file: "invalid/mismatch01.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com", anomalies: AnomalyCSeq,
		header: HeaderCSeq, value: "8 INVITE", cl: 0},
	// §3.1.2.18 Unknown method with CSeq method mismatch: invalid (400).
	{file: "invalid/mismatch02.dat", request: true, method: MethodUnknown, name: "NEWMETHOD", uri: "sip:user@example.com", anomalies: AnomalyCSeq,
		header: HeaderCSeq, value: "8 INVITE", cl: 138, body: 138},
	// §3.1.2.19 Overlarge response code: invalid (drop). StatusCode 0.
	{file: "invalid/bigcode.dat", method: MethodINVITE, name: "INVITE", status: 0, anomalies: AnomalyStatusCode,
		header: HeaderCallID, value: "bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i", cl: 0},
	// §3.1.3.1 Missing transaction identifier (branch without magic
	// cookie): transaction-layer semantics, valid syntax; not flagged.
	{file: "invalid/badbranch.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com",
		header: HeaderVia, value: "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK", cl: 0},
	// §3.1.4.1 Missing required header fields: invalid (400).
	{file: "invalid/insuf.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com", anomalies: AnomalyMissing,
		header: HeaderContentLength, value: "152", cl: 152, body: 152},
	// §3.1.4.2 Request-URI with unknown scheme: application semantics
	// (416); valid syntax, reported.
	{file: "invalid/unkscm.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "nobodyKnowsThisScheme:totallyopaquecontent",
		header: HeaderTo, value: "sip:user@example.com", cl: 0},
	// §3.1.4.3 Request-URI with known but atypical scheme: as above.
	{file: "invalid/novelsc.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "soap.beep://192.0.2.103:3002",
		header: HeaderTo, value: "sip:user@example.com", cl: 0},
	// §3.1.4.4 Unknown URI schemes in header fields: valid syntax.
	{file: "invalid/unksm2.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderTo, value: "isbn:2983792873", cl: 0},
	// §3.1.4.5 Proxy-Require and Require: application semantics (420).
	{file: "invalid/bext01.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com",
		header: HeaderVia, value: "SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw", cl: 0},
	// §3.1.4.6 Unknown Content-Type: application semantics (415).
	{file: "invalid/invut.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderContentType, value: "application/unknownformat", cl: 40, body: 40},
	// §3.1.4.7 Unknown authorization scheme: application semantics.
	{file: "invalid/regaut01.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderAuthorization, value: "NoOneKnowsThisScheme opaque-data=here", cl: 0},
	// §3.1.4.8 Multiple values in single-value required fields: invalid
	// (400). The first of each is reported.
	{file: "invalid/multi01.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@company.com", anomalies: AnomalyDuplicate,
		header: HeaderCallID, value: "multi01.98asdh@192.0.2.1", cl: 154, body: 154},
	// §3.1.4.9 Multiple Content-Length values: invalid (400); the message
	// cannot be framed: ErrContentLength.
	{file: "invalid/mcl01.dat", err: ErrContentLength, request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com", anomalies: AnomalyDuplicate,
		header: HeaderContentLength, value: "13", cl: -1, body: 67},
	// §3.1.4.10 200 OK with broadcast Via: application semantics (drop).
	{file: "invalid/bcast.dat", method: MethodINVITE, name: "INVITE", status: 200,
		header: HeaderVia, value: "SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923", cl: 154, body: 154},
	// §3.1.4.11 Max-Forwards of zero: valid syntax (483 for a proxy).
	{file: "invalid/zeromf.dat", request: true, method: MethodOPTIONS, name: "OPTIONS", uri: "sip:user@example.com",
		header: HeaderMaxForwards, value: "0", cl: 0},
	// §3.1.4.12 REGISTER with a contact header parameter: semantics.
	{file: "invalid/cparam01.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderContact, value: "sip:+19725552222@gw1.example.net;unknownparam", cl: 0},
	// §3.1.4.13 REGISTER with a url parameter: semantics.
	{file: "invalid/cparam02.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderContact, value: "<sip:+19725552222@gw1.example.net;unknownparam>", cl: 0},
	// §3.1.4.14 REGISTER with a URL escaped header: semantics.
	{file: "invalid/regescrt.dat", request: true, method: MethodREGISTER, name: "REGISTER", uri: "sip:example.com",
		header: HeaderContact, value: "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>", cl: 0},
	// §3.1.4.15 Unacceptable Accept offering: semantics (415/488).
	{file: "invalid/sdp01.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:user@example.com",
		header: HeaderTo, value: "sip:j_user@example.com", cl: 150, body: 150},
	// §3.1.5.1 INVITE with RFC 2543 syntax: a receiver should accept it.
	// No Content-Length (UDP): the body is the rest of the datagram.
	{file: "invalid/inv2543.dat", request: true, method: MethodINVITE, name: "INVITE", uri: "sip:UserB@example.com",
		header: HeaderVia, value: "SIP/2.0/UDP iftgw.example.com", cl: -1, body: 105},
	// Not an RFC 4475 message (sipgo's own test): the request line has no
	// SIP version, so it is not SIP.
	{file: "invalid/test.dat", err: ErrNotSIP, cl: -1},
}

func TestTorture(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(tortureDir, "*", "*.dat"))
	if len(files) != len(tortureCases) {
		t.Errorf("%d torture files, %d cases", len(files), len(tortureCases))
	}
	for _, tc := range tortureCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(tortureDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var m Message
			err = Parse(data, &m)
			if !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			if m.Request != tc.request || m.Method != tc.method || string(m.MethodName) != tc.name {
				t.Errorf("request %v method %v %q, want %v %v %q", m.Request, m.Method, m.MethodName, tc.request, tc.method, tc.name)
			}
			if string(m.RequestURI) != tc.uri {
				t.Errorf("RequestURI = %q, want %q", m.RequestURI, tc.uri)
			}
			if m.StatusCode != tc.status {
				t.Errorf("StatusCode = %d, want %d", m.StatusCode, tc.status)
			}
			if m.Anomalies != tc.anomalies {
				t.Errorf("Anomalies = %v, want %v", m.Anomalies, tc.anomalies)
			}
			if tc.value != "" && string(m.Header(tc.header)) != tc.value {
				t.Errorf("%v = %q, want %q", tc.header, m.Header(tc.header), tc.value)
			}
			if m.ContentLength != tc.cl || len(m.Body) != tc.body {
				t.Errorf("ContentLength %d body %d, want %d %d", m.ContentLength, len(m.Body), tc.cl, tc.body)
			}
			if m.Folded != tc.folded {
				t.Errorf("Folded = %v, want %v", m.Folded, tc.folded)
			}
			if tc.err == nil || errors.Is(tc.err, ErrShortBody) || errors.Is(tc.err, ErrContentLength) {
				if m.HeaderLen == 0 || m.Len != m.HeaderLen+len(m.Body) {
					t.Errorf("HeaderLen %d Len %d body %d", m.HeaderLen, m.Len, len(m.Body))
				}
			}
			if tc.err == nil && tc.anomalies == 0 && tc.request {
				for _, h := range []Header{HeaderTo, HeaderFrom, HeaderCallID, HeaderCSeq, HeaderVia} {
					if m.Header(h) == nil {
						t.Errorf("valid request without %v", h)
					}
				}
			}
		})
	}
}

func TestTortureDoubleRequest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(tortureDir, "valid/dblreq.dat"))
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := Parse(data, &m); err != nil {
		t.Fatal(err)
	}
	// Over a stream, the bytes after the first message are the second.
	var second Message
	if err := Parse(data[m.Len:], &second); err != nil && !errors.Is(err, ErrShortBody) {
		t.Fatal(err)
	}
	if second.Method != MethodINVITE || string(second.To()) != "sip:joe@example.com" {
		t.Errorf("second message: %v To %q", second.Method, second.To())
	}
}
