package crowdsec

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Scenarios are the scenario names sipwall's watcher announces at login;
// every alert it pushes is one of them: sipwall/<kind>.
var Scenarios = []string{
	"sipwall/scanner", // a scanner's User-Agent or signature
	"sipwall/trap",    // a trap port touched
	"sipwall/auth",    // failed authentications in the PBX's log
	"sipwall/answers", // failure answers counted on the wire
	"sipwall/manual",  // a ban by hand
}

// Origin is the origin sipwall's pushed decisions carry.
const Origin = "sipwall"

// Event is one thing that led to a ban, with its metadata.
type Event struct {
	Time time.Time
	Meta map[string]string
}

// Report is a ban guard made, to push as an alert.
type Report struct {
	// Kind is the scenario's second part: scanner, trap, auth, answers.
	Kind   string
	Source netip.Addr
	For    time.Duration
	Start  time.Time
	Stop   time.Time
	Events []Event
	// Message is a sentence for the alert ("5 failed authentications").
	Message string
}

// Alert is the LAPI's alert object (POST /v1/alerts), with the fields the
// 1.4 API requires.
type Alert struct {
	Scenario        string          `json:"scenario"`
	ScenarioHash    string          `json:"scenario_hash"`
	ScenarioVersion string          `json:"scenario_version"`
	Message         string          `json:"message"`
	EventsCount     int32           `json:"events_count"`
	StartAt         string          `json:"start_at"`
	StopAt          string          `json:"stop_at"`
	Capacity        int32           `json:"capacity"`
	Leakspeed       string          `json:"leakspeed"`
	Simulated       bool            `json:"simulated"`
	Events          []AlertEvent    `json:"events"`
	Source          AlertSource     `json:"source"`
	Decisions       []AlertDecision `json:"decisions"`
}

// AlertEvent is one event of an alert.
type AlertEvent struct {
	Timestamp string     `json:"timestamp"`
	Meta      []MetaItem `json:"meta"`
}

// MetaItem is a key and a value of an event's metadata.
type MetaItem struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// AlertSource is who the alert is about.
type AlertSource struct {
	Scope string `json:"scope"`
	Value string `json:"value"`
	IP    string `json:"ip,omitempty"`
}

// AlertDecision is the decision an alert carries.
type AlertDecision struct {
	Duration string `json:"duration"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
}

// ToAlert turns a report into the LAPI's alert with its ban decision.
func (r Report) ToAlert() Alert {
	scenario := "sipwall/" + r.Kind
	start, stop := r.Start, r.Stop
	if start.IsZero() {
		start = time.Now()
	}
	if stop.IsZero() || stop.Before(start) {
		stop = start
	}
	src := r.Source.Unmap().String()
	msg := r.Message
	if msg == "" {
		msg = fmt.Sprintf("%s banned by sipwall (%s)", src, r.Kind)
	}
	var evs []AlertEvent
	for _, e := range r.Events {
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ev := AlertEvent{Timestamp: e.Time.UTC().Format(time.RFC3339), Meta: []MetaItem{{Key: "source_ip", Value: src}}}
		for _, k := range keys {
			ev.Meta = append(ev.Meta, MetaItem{Key: k, Value: e.Meta[k]})
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		evs = []AlertEvent{{Timestamp: stop.UTC().Format(time.RFC3339), Meta: []MetaItem{{Key: "source_ip", Value: src}}}}
	}
	return Alert{
		Scenario: scenario, ScenarioHash: "", ScenarioVersion: "1",
		Message: msg, EventsCount: int32(len(evs)),
		StartAt: start.UTC().Format(time.RFC3339), StopAt: stop.UTC().Format(time.RFC3339),
		Leakspeed: "0", Events: evs,
		Source: AlertSource{Scope: "Ip", Value: src, IP: src},
		Decisions: []AlertDecision{{
			Duration: r.For.Round(time.Second).String(), Origin: Origin, Scenario: scenario,
			Scope: "Ip", Type: "ban", Value: src,
		}},
	}
}
