package crowdsec

import (
	"context"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
)

// List is the list that holds the LAPI's bans.
const List = "fleet"

// StoreSink writes the bouncer's changes into a list of the set store: a
// startup pull replaces the whole list in one transaction; a delta deletes
// what was lifted, then adds or refreshes the rest with their timeouts.
type StoreSink struct {
	Store backend.SetStore
	// List defaults to "fleet".
	List string
	// MaxTimeout is the backend's longest timeout; a longer decision is
	// held that long, and refreshed by the resync that follows.
	MaxTimeout time.Duration
	Now        func() time.Time
}

func (s StoreSink) list() string {
	if s.List != "" {
		return s.List
	}
	return List
}

func (s StoreSink) entries(bans []Ban) []backend.Entry {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	out := make([]backend.Entry, 0, len(bans))
	for _, b := range bans {
		left := b.Until.Sub(now).Round(time.Second)
		if left < time.Second {
			continue
		}
		if s.MaxTimeout > 0 && left > s.MaxTimeout {
			left = s.MaxTimeout
		}
		out = append(out, backend.Entry{List: s.list(), Prefix: b.Prefix, Remaining: left, Comment: b.Reason})
	}
	return out
}

// Apply implements Sink.
func (s StoreSink) Apply(ctx context.Context, ch *Change) error {
	if ch.Full {
		return s.Store.Replace(ctx, s.list(), s.entries(ch.Set))
	}
	if len(ch.Del) > 0 {
		del := make([]backend.Entry, len(ch.Del))
		for i, p := range ch.Del {
			del[i] = backend.Entry{List: s.list(), Prefix: p}
		}
		if err := s.Store.Delete(ctx, del); err != nil {
			return err
		}
	}
	if len(ch.Set) > 0 {
		if _, _, err := s.Store.Add(ctx, s.entries(ch.Set)); err != nil {
			return err
		}
	}
	return nil
}
