package crowdsec

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink writes a pull's change into the kernel, in one transaction: the
// whole list replaced when Full, otherwise Set added or refreshed (timeouts
// until Until) and Del removed.
type Sink interface {
	Apply(ctx context.Context, ch *Change) error
}

// Metrics are the bouncer's and the watcher's counters, registered on
// guard's registry.
type Metrics struct {
	Pulls     *prometheus.CounterVec // pulls, by result (ok, error)
	Decisions prometheus.Gauge       // prefixes enforced from the LAPI
	Added     prometheus.Counter     // bans added or refreshed
	Deleted   prometheus.Counter     // bans lifted
	Skipped   prometheus.Counter     // decisions not enforced
	Pushed    *prometheus.CounterVec // alerts pushed, by result
	Dropped   prometheus.Counter     // alerts dropped (queue full)
	PullTime  prometheus.Histogram   // seconds from the pull's start to the kernel write's end
}

// NewMetrics makes the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "sipwall", "crowdsec"
	m := &Metrics{
		Pulls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "pulls_total",
			Help: "Decision stream pulls from the LAPI, by result."}, []string{"result"}),
		Decisions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "decisions",
			Help: "Addresses and networks enforced from the LAPI's decisions."}),
		Added: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bans_added_total",
			Help: "Bans added or refreshed from the LAPI."}),
		Deleted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bans_deleted_total",
			Help: "Bans lifted because their decisions were deleted."}),
		Skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "decisions_skipped_total",
			Help: "Decisions not enforced (scope, type, protected address)."}),
		Pushed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "alerts_pushed_total",
			Help: "Alerts pushed to the LAPI, by result."}, []string{"result"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "alerts_dropped_total",
			Help: "Alerts dropped because the push queue was full."}),
		PullTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "pull_seconds",
			Help: "From a pull's start to its change in the kernel.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.Pulls, m.Decisions, m.Added, m.Deleted, m.Skipped, m.Pushed, m.Dropped, m.PullTime)
	}
	return m
}

// Bouncer pulls decisions and writes them through a Sink.
type Bouncer struct {
	Client    *Client
	Decisions *Decisions
	Sink      Sink
	// Every is the pull interval (default 2 s).
	Every time.Duration
	// Scopes and Origins filter the stream (empty: all).
	Scopes, Origins []string
	Log             *slog.Logger
	Metrics         *Metrics
	// Now is the clock (tests).
	Now func() time.Time

	mu       sync.Mutex
	last     time.Time
	lastErr  error
	resyncs  int
	kernelOK bool
}

// Status is what `sipwall crowdsec status` shows of a running bouncer.
type Status struct {
	Enforced int       `json:"enforced"`
	LastPull time.Time `json:"last_pull"`
	LastErr  string    `json:"last_error,omitempty"`
	Resyncs  int       `json:"resyncs"`
}

// Status reports the bouncer's state.
func (b *Bouncer) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{Enforced: b.Decisions.Len(), LastPull: b.last, Resyncs: b.resyncs}
	if b.lastErr != nil {
		s.LastErr = b.lastErr.Error()
	}
	return s
}

// Once pulls once and writes the change. startup asks for every decision.
func (b *Bouncer) Once(ctx context.Context, startup bool) (*Change, error) {
	now := b.now()
	s, err := b.Client.Pull(ctx, startup, b.Scopes, b.Origins)
	if err != nil {
		return nil, err
	}
	pulled := b.now()
	ch := b.Decisions.Apply(s, startup, b.now(), func(scope, value string) ([]Decision, error) {
		return b.Client.Active(ctx, scope, value)
	})
	s = nil
	pictured := b.now()
	if !ch.Empty() {
		if err := b.Sink.Apply(ctx, ch); err != nil {
			return ch, err
		}
	}
	ch.Took = Timing{Pull: pulled.Sub(now), Picture: pictured.Sub(pulled), Kernel: b.now().Sub(pictured)}
	if m := b.Metrics; m != nil {
		m.Added.Add(float64(len(ch.Set)))
		m.Deleted.Add(float64(len(ch.Del)))
		m.Skipped.Add(float64(len(ch.Skipped)))
		m.Decisions.Set(float64(b.Decisions.Len()))
		m.PullTime.Observe(b.now().Sub(now).Seconds())
	}
	for _, sk := range ch.Skipped {
		b.log().Info("crowdsec decision not enforced", "id", sk.Decision.ID, "scope", sk.Decision.Scope,
			"value", sk.Decision.Value, "type", sk.Decision.Type, "why", sk.Why)
	}
	return ch, nil
}

func (b *Bouncer) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Bouncer) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run pulls every Every until ctx ends. The first pull, and the first after
// any failure (the LAPI away, a kernel write refused), is a full resync: the
// list is replaced by the LAPI's whole picture. While the LAPI is away the
// bans in the kernel stay and the pulls back off with jitter.
func (b *Bouncer) Run(ctx context.Context) error {
	every := b.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	startup, backoff := true, every
	for {
		began := b.now()
		ch, err := b.Once(ctx, startup)
		if err == nil && startup {
			// A full pull decodes the LAPI's whole picture (15 MB of JSON
			// for 100,000 decisions): give that memory back now rather
			// than hold it until the next resync.
			took := ch.Took
			ch = nil
			debug.FreeOSMemory()
			b.log().Info("crowdsec full pull enforced", "enforced", b.Decisions.Len(), "pull", took.Pull.Round(time.Millisecond),
				"picture", took.Picture.Round(time.Millisecond), "kernel", took.Kernel.Round(time.Millisecond), "took", b.now().Sub(began).Round(time.Millisecond))
		} else if err == nil && !ch.Empty() {
			b.log().Debug("crowdsec pull enforced", "set", len(ch.Set), "deleted", len(ch.Del), "took", b.now().Sub(began).Round(time.Millisecond))
		}
		if ctx.Err() != nil {
			return nil
		}
		b.mu.Lock()
		b.lastErr = err
		if err == nil {
			b.last = b.now()
			if startup {
				b.resyncs++
			}
		}
		b.mu.Unlock()
		wait := every
		if err != nil {
			if b.Metrics != nil {
				b.Metrics.Pulls.WithLabelValues("error").Inc()
			}
			if errors.Is(err, ErrUnauthorized) {
				b.log().Error("crowdsec: the LAPI refused the bouncer key", "err", err)
			} else {
				b.log().Warn("crowdsec pull failed; bans in place stay", "err", err, "retry_in", backoff)
			}
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))
			backoff = min(backoff*2, time.Minute)
			startup = true
		} else {
			if b.Metrics != nil {
				b.Metrics.Pulls.WithLabelValues("ok").Inc()
			}
			backoff, startup = every, false
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Watcher pushes guard's bans to the LAPI in batches.
type Watcher struct {
	Client *Client
	// Every is how long reports wait to be batched (default 1 s); a batch
	// holds at most 100.
	Every   time.Duration
	Log     *slog.Logger
	Metrics *Metrics

	once sync.Once
	q    chan Report

	mu      sync.Mutex
	pushed  int
	pending int
	lastErr error
}

// WatcherStatus is what `sipwall crowdsec status` shows of the watcher.
type WatcherStatus struct {
	Pushed  int    `json:"pushed"`
	Pending int    `json:"pending"`
	LastErr string `json:"last_error,omitempty"`
}

// Status reports the watcher's state.
func (w *Watcher) Status() WatcherStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WatcherStatus{Pushed: w.pushed, Pending: w.pending}
	if w.lastErr != nil {
		s.LastErr = w.lastErr.Error()
	}
	return s
}

const watcherQueue = 10000

func (w *Watcher) init() { w.once.Do(func() { w.q = make(chan Report, watcherQueue) }) }

// Report queues a ban to push; it never blocks guard (a full queue drops
// the report and counts it).
func (w *Watcher) Report(r Report) {
	w.init()
	select {
	case w.q <- r:
	default:
		if w.Metrics != nil {
			w.Metrics.Dropped.Inc()
		}
	}
}

// Run pushes queued reports until ctx ends; a failed batch is retried with
// backoff, and kept (up to the queue's size) while the LAPI is away.
func (w *Watcher) Run(ctx context.Context) error {
	w.init()
	every := w.Every
	if every <= 0 {
		every = time.Second
	}
	var pending []Alert
	backoff := every
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-w.q:
			if len(pending) < watcherQueue {
				pending = append(pending, r.ToAlert())
			} else if w.Metrics != nil {
				w.Metrics.Dropped.Inc()
			}
			if len(pending) < 100 {
				continue
			}
		case <-t.C:
		}
		if len(pending) == 0 {
			continue
		}
		n := min(len(pending), 100)
		err := w.Client.Push(ctx, pending[:n])
		w.mu.Lock()
		w.lastErr = err
		if err == nil {
			w.pushed += n
		}
		w.pending = len(pending)
		if err == nil {
			w.pending -= n
		}
		w.mu.Unlock()
		if err != nil {
			if w.Metrics != nil {
				w.Metrics.Pushed.WithLabelValues("error").Add(float64(n))
			}
			if w.Log != nil {
				w.Log.Warn("crowdsec push failed; retrying", "alerts", len(pending), "err", err, "retry_in", backoff)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = every
		if w.Metrics != nil {
			w.Metrics.Pushed.WithLabelValues("ok").Add(float64(n))
		}
		pending = append(pending[:0], pending[n:]...)
	}
}
