// Package sip scans SIP messages in place, without allocating, for a
// firewall that matches on a handful of fields.
//
// Parse reads the start line and the header fields a firewall rule looks at
// (User-Agent, Server, From, To, the first Via, Call-ID, Contact, CSeq,
// Content-Length and a few more) into a caller-owned Message whose byte
// slices point into the payload. Header names are matched case-insensitively
// and in their compact forms (RFC 3261 §7.3.3, plus the compact forms later
// RFCs registered). Bare LF line endings are accepted. A header value that
// is folded over several lines is reported as one subslice with the folding
// (CRLF followed by spaces or tabs) left intact; AppendUnfolded turns it
// into a single line in a caller-provided buffer.
//
// Parse is a scanner, not a validating parser: it fills in every field it
// can find and describes what is wrong with the message in Message.Anomalies
// instead of refusing it, so a firewall can drop a malformed message by
// rule. It returns an error only when the payload is not a SIP message at
// all or when its framing is broken (headers never end, Content-Length
// unusable or larger than the bytes present); even then the fields read so
// far are filled in.
//
// Stream and StreamPool reassemble SIP messages carried over TCP with a
// bounded buffer per flow; ContainsFold and friends compare ASCII text
// case-insensitively without allocating, for hostname and User-Agent
// checks.
package sip

// Method is a SIP request method.
type Method uint8

// Methods of RFC 3261 and its extensions. MethodUnknown is any other
// token; Message.MethodName holds it.
const (
	MethodUnknown Method = iota
	MethodINVITE
	MethodACK
	MethodBYE
	MethodCANCEL
	MethodREGISTER
	MethodOPTIONS
	MethodPRACK
	MethodSUBSCRIBE
	MethodNOTIFY
	MethodPUBLISH
	MethodINFO
	MethodREFER
	MethodMESSAGE
	MethodUPDATE
	numMethods
)

var methodNames = [numMethods]string{
	"", "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK",
	"SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
}

// String returns the method's name, or "unknown".
func (m Method) String() string {
	if m == MethodUnknown || m >= numMethods {
		return "unknown"
	}
	return methodNames[m]
}

// LookupMethod returns the Method named by b. Method names are
// case-sensitive (RFC 3261 §7.1), so "invite" is MethodUnknown.
func LookupMethod[T ~string | ~[]byte](b T) Method {
	for m := MethodINVITE; m < numMethods; m++ {
		if string(b) == methodNames[m] {
			return m
		}
	}
	return MethodUnknown
}

// Header identifies one of the header fields Parse records.
type Header uint8

// Headers Parse records. The comment gives the compact form, if any.
const (
	HeaderUserAgent     Header = iota
	HeaderServer               //
	HeaderFrom                 // f
	HeaderTo                   // t
	HeaderVia                  // v
	HeaderCallID               // i
	HeaderContact              // m
	HeaderCSeq                 //
	HeaderContentLength        // l
	HeaderContentType          // c
	HeaderMaxForwards          //
	HeaderExpires              //
	HeaderSubject              // s
	HeaderAuthorization        //
	HeaderEvent                // o
	HeaderSupported            // k
	NumHeaders                 // number of recorded headers
)

var headerNames = [NumHeaders]string{
	"User-Agent", "Server", "From", "To", "Via", "Call-ID", "Contact", "CSeq",
	"Content-Length", "Content-Type", "Max-Forwards", "Expires", "Subject",
	"Authorization", "Event", "Supported",
}

// String returns the header's canonical name.
func (h Header) String() string {
	if h < NumHeaders {
		return headerNames[h]
	}
	return "unknown"
}

// Anomaly is a set of things wrong with a message that still parsed.
type Anomaly uint16

// Anomalies Parse detects.
const (
	// AnomalyStartLine: the request line has extra or trailing whitespace,
	// whitespace inside the Request-URI, or a Request-URI in <>.
	AnomalyStartLine Anomaly = 1 << iota
	// AnomalyVersion: the SIP version is not SIP/2.0.
	AnomalyVersion
	// AnomalyStatusCode: the status code is not three digits in 100..699
	// (StatusCode is then 0).
	AnomalyStatusCode
	// AnomalyHeaderLine: a header line without a colon or with an empty or
	// non-token name; it is skipped.
	AnomalyHeaderLine
	// AnomalyDuplicate: a header that must appear once (From, To, Call-ID,
	// CSeq, Content-Length, Max-Forwards) appears more than once.
	AnomalyDuplicate
	// AnomalyCSeq: CSeq is not "number method", its number is not below
	// 2**31, or its method differs from the request's.
	AnomalyCSeq
	// AnomalyMissing: one of To, From, Call-ID, CSeq or Via is missing.
	AnomalyMissing
	// AnomalyScalar: Max-Forwards is not a number up to 255, or Expires is
	// not a number below 2**32.
	AnomalyScalar
	// AnomalyQuote: a quoted string in From, To or Contact is not closed.
	AnomalyQuote
	// AnomalyMethod: the method is not a token.
	AnomalyMethod
	// AnomalyNameAddr: in From, To or Contact, an unquoted display name
	// holds non-token characters, or whitespace follows '<' or precedes
	// '>'.
	AnomalyNameAddr
)

var anomalyNames = [...]string{
	"start-line", "version", "status-code", "header-line", "duplicate",
	"cseq", "missing", "scalar", "quote", "method", "name-addr",
}

// String lists the anomalies, separated by "|".
func (a Anomaly) String() string {
	if a == 0 {
		return "none"
	}
	s := ""
	for i, n := range anomalyNames {
		if a&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	return s
}

// Message is one scanned SIP message. Parse overwrites every field; byte
// slices point into the payload passed to Parse.
type Message struct {
	// Request is true for a request, false for a response.
	Request bool
	// Method is the request method; MethodName its bytes (also set, for
	// responses, from the CSeq method).
	Method     Method
	MethodName []byte
	RequestURI []byte
	Version    []byte // "SIP/2.0"
	StatusCode int
	Reason     []byte

	// Headers holds the value of the first occurrence of each recorded
	// header, trimmed of surrounding whitespace, folding intact; nil when
	// absent. Counts holds the number of occurrences (saturating at 255);
	// a header with comma-separated values counts once.
	Headers [NumHeaders][]byte
	Counts  [NumHeaders]uint8

	// CSeqNum and CSeqMethod are the parts of the first CSeq header.
	CSeqNum    uint32
	CSeqMethod []byte

	// ContentLength is the first Content-Length value, or -1 when there is
	// none or it is unusable.
	ContentLength int

	// HeaderLen is the length of the start line and headers, including the
	// empty line that ends them (0 when they never end).
	HeaderLen int
	// Body is the body: Content-Length bytes after the headers, or all
	// bytes after the headers when there is no Content-Length.
	Body []byte
	// Len is the number of payload bytes this message occupies, leading
	// CRLFs included: HeaderLen plus the body. Bytes after it (a second
	// message, garbage) are not part of the message.
	Len int

	// Folded is set when a header line is continued on the next line.
	Folded bool
	// BareLF is set when a line ends in LF without CR.
	BareLF bool
	// HeaderLines counts all header fields, recorded or not.
	HeaderLines int
	// Anomalies describes what is wrong with the message.
	Anomalies Anomaly
}

// Header returns the first value of header h, or nil.
func (m *Message) Header(h Header) []byte {
	if h < NumHeaders {
		return m.Headers[h]
	}
	return nil
}

// UserAgent returns the User-Agent header value.
func (m *Message) UserAgent() []byte { return m.Headers[HeaderUserAgent] }

// From returns the From header value.
func (m *Message) From() []byte { return m.Headers[HeaderFrom] }

// To returns the To header value.
func (m *Message) To() []byte { return m.Headers[HeaderTo] }

// Via returns the first Via header value.
func (m *Message) Via() []byte { return m.Headers[HeaderVia] }

// CallID returns the Call-ID header value.
func (m *Message) CallID() []byte { return m.Headers[HeaderCallID] }

// Contact returns the first Contact header value.
func (m *Message) Contact() []byte { return m.Headers[HeaderContact] }
