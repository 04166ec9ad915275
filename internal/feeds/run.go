package feeds

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink replaces a feed's list with prefixes in one transaction.
type Sink interface {
	Replace(ctx context.Context, feed string, prefixes []netip.Prefix) error
}

// Protected says why a network must never be blocked ("" when it may be):
// trusted and allowed sources, the host's own addresses, the SSH client.
type Protected func(netip.Prefix) string

// Metrics are the feeds' counters, on guard's registry.
type Metrics struct {
	Fetches *prometheus.CounterVec // by feed and result (ok, unchanged, error)
	Entries *prometheus.GaugeVec   // entries per feed list
	Dropped *prometheus.CounterVec // entries left out because they cover a protected source
}

// NewMetrics makes the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "sipwall", "feeds"
	m := &Metrics{
		Fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fetches_total",
			Help: "Feed downloads, by feed and result."}, []string{"feed", "result"}),
		Entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "entries",
			Help: "Entries in each feed's list."}, []string{"feed"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "protected_entries_total",
			Help: "Feed entries not enforced because they cover a protected source."}, []string{"feed"}),
	}
	if reg != nil {
		reg.MustRegister(m.Fetches, m.Entries, m.Dropped)
	}
	return m
}

// State is what `status` shows of one feed.
type State struct {
	Name      string    `json:"name"`
	Entries   int       `json:"entries"`
	Updated   time.Time `json:"updated,omitzero"`
	Checked   time.Time `json:"checked,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Runner fetches every feed on its schedule and writes it through Sink.
type Runner struct {
	Fetcher *Fetcher
	Feeds   []Feed
	Sink    Sink
	Protect Protected
	Log     *slog.Logger
	Metrics *Metrics

	mu    sync.Mutex
	state map[string]*State
}

// States reports every feed's state.
func (r *Runner) States() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []State
	for _, f := range r.Feeds {
		if s := r.state[f.Name]; s != nil {
			out = append(out, *s)
		} else {
			out = append(out, State{Name: f.Name})
		}
	}
	return out
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Update fetches one feed now and, when it changed, replaces its list.
// On any error the list in place stays.
func (r *Runner) Update(ctx context.Context, f Feed) error {
	r.mu.Lock()
	if r.state == nil {
		r.state = map[string]*State{}
	}
	st := r.state[f.Name]
	if st == nil {
		st = &State{Name: f.Name}
		r.state[f.Name] = st
	}
	r.mu.Unlock()
	now := time.Now()
	list, err := r.Fetcher.Fetch(ctx, f)
	result := "ok"
	if errors.Is(err, ErrNotModified) {
		result, err = "unchanged", nil
	} else if err == nil {
		kept := list[:0]
		dropped := 0
		for _, p := range list {
			if r.Protect != nil {
				if why := r.Protect(p); why != "" {
					dropped++
					r.log().Warn("feed entry not enforced", "feed", f.Name, "entry", p.String(), "why", why)
					continue
				}
			}
			kept = append(kept, p)
		}
		if r.Metrics != nil && dropped > 0 {
			r.Metrics.Dropped.WithLabelValues(f.Name).Add(float64(dropped))
		}
		if err = r.Sink.Replace(ctx, f.Name, kept); err != nil {
			r.Fetcher.Forget(f.Name) // fetch it whole next time
		} else {
			r.mu.Lock()
			st.Entries, st.Updated = len(kept), now
			r.mu.Unlock()
			if r.Metrics != nil {
				r.Metrics.Entries.WithLabelValues(f.Name).Set(float64(len(kept)))
			}
			r.log().Info("feed updated", "feed", f.Name, "entries", len(kept), "protected", dropped)
		}
	}
	if err != nil {
		result = "error"
		r.log().Warn("feed not updated; its previous list stays", "feed", f.Name, "err", err)
	}
	r.mu.Lock()
	st.Checked = now
	st.LastError = ""
	if err != nil {
		st.LastError = err.Error()
	}
	r.mu.Unlock()
	if r.Metrics != nil {
		r.Metrics.Fetches.WithLabelValues(f.Name, result).Inc()
	}
	return err
}

// Run updates every feed at once, then each on its own schedule (with a
// little jitter, and sooner after a failure), until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range r.Feeds {
		wg.Add(1)
		go func(f Feed) {
			defer wg.Done()
			every := f.Every
			if every <= 0 {
				every = time.Hour
			}
			for {
				wait := every
				if err := r.Update(ctx, f); err != nil {
					wait = min(every, 5*time.Minute)
				}
				wait += time.Duration(rand.Int64N(int64(wait)/20 + 1))
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}(f)
	}
	wg.Wait()
	return nil
}
