package live

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sipwall/sipwall/internal/guard/events"
)

// Metrics are guard's Prometheus metrics, on a registry of their own
// (namespace sipwall, subsystem guard).
type Metrics struct {
	Registry *prometheus.Registry

	Events        *prometheus.CounterVec   // failures seen, by event type and source
	Rejected      prometheus.Counter       // failure-like lines that could not be attributed
	Bans          *prometheus.CounterVec   // bans, by reason
	Admits        prometheus.Counter       // sources admitted by the inspector
	Successes     *prometheus.CounterVec   // registrations and authentications admitted, by event and input
	Verdicts      *prometheus.CounterVec   // inspector verdicts, by verdict and reason
	InspectorPkts prometheus.Counter       // packets received from nflog
	Overruns      prometheus.Counter       // nflog socket overruns (packets lost)
	SetEntries    *prometheus.GaugeVec     // entries per kernel list
	Lag           *prometheus.HistogramVec // event time to processing, by source
	BanLatency    prometheus.Histogram     // from reading the failure to the ban in the kernel
	Errors        *prometheus.CounterVec   // failed operations, by operation
	Up            *prometheus.GaugeVec     // 1 when an input is working, by input
}

// NewMetrics registers guard's metrics on a new registry.
func NewMetrics() *Metrics {
	const ns, sub = "sipwall", "guard"
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Security failures attributed to an address, by event type and input (log, journal, ami)."}, []string{"type", "input"}),
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rejected_lines_total",
			Help: "Lines that look like security failures but cannot be attributed safely."}),
		Bans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bans_total",
			Help: "Addresses banned, by reason (auth-failures, admitted-auth-failures, scanner)."}, []string{"reason"}),
		Admits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "admits_total",
			Help: "Sources admitted to SIP by the inspector (hostname knock or user-agent)."}),
		Successes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "success_admits_total",
			Help: "Sources admitted (or their admission extended) because Asterisk reported them registered or authenticated, by event (SuccessfulAuth, ContactStatus, PeerStatus) and input."}, []string{"event", "input"}),
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "inspector_verdicts_total",
			Help: "Inspector verdicts on packets from nflog, by verdict and reason."}, []string{"verdict", "reason"}),
		InspectorPkts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "inspector_packets_total",
			Help: "Packets received from the nflog group."}),
		Overruns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "inspector_overruns_total",
			Help: "Times the nflog socket buffer overflowed (packets lost to the inspector)."}),
		SetEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "set_entries",
			Help: "Entries in each kernel list, both families."}, []string{"list"}),
		Lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "lag_seconds",
			Help:    "Time from an event's own timestamp to guard processing it, by input.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300}}, []string{"input"}),
		BanLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "ban_seconds",
			Help:    "Time from reading the decisive event to the ban being in the kernel.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1}}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed operations, by operation (ban, admit, allow, conntrack, save, stats, resolve, journal, input)."}, []string{"op"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "input_up",
			Help: "1 when an input (log file, journal, AMI, nflog) is working."}, []string{"input"}),
	}
	m.Registry.MustRegister(m.Events, m.Rejected, m.Bans, m.Admits, m.Successes, m.Verdicts, m.InspectorPkts, m.Overruns,
		m.SetEntries, m.Lag, m.BanLatency, m.Errors, m.Up)
	for _, k := range events.Kinds() {
		m.Events.WithLabelValues(k.String(), "log")
	}
	for _, r := range []string{reasonFailures, reasonAdmittedFailures, reasonScanner} {
		m.Bans.WithLabelValues(r)
	}
	return m
}

// Health records the state of each input for /healthz.
type Health struct {
	mu     sync.Mutex
	inputs map[string]string // input -> "" when fine, else the problem
}

// Set records input's state: problem "" means it works.
func (h *Health) Set(input, problem string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inputs == nil {
		h.inputs = map[string]string{}
	}
	h.inputs[input] = problem
}

// Check returns the problems, sorted; none means healthy.
func (h *Health) Check() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var bad []string
	for in, p := range h.inputs {
		if p != "" {
			bad = append(bad, in+": "+p)
		}
	}
	sort.Strings(bad)
	return bad
}

// Handler serves /metrics and /healthz (200 "ok", or 503 with the
// problems, one a line).
func Handler(m *Metrics, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if bad := h.Check(); len(bad) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(bad, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
