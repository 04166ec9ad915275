package jail

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// BanOrder is one ban decision ready for the firewall.
type BanOrder struct {
	Prefix   netip.Prefix  // the address (/32, /128) or the IPv6 network banned
	At       time.Time     // when it was decided
	Until    time.Time     // when it ends
	Duration time.Duration // its length (the set entry's timeout)
}

// Batcher groups the bans decided within a short interval so the set store
// can add them in one transaction: Add never waits for the firewall, and
// Run hands each batch to Flush at most Interval after its first ban, or
// as soon as MaxBatch bans are waiting.
type Batcher struct {
	Interval time.Duration // default 10 ms
	MaxBatch int           // default 4096
	// Flush adds one batch to the firewall. It is called from Run's
	// goroutine only, one batch at a time, in decision order.
	Flush func(ctx context.Context, bans []BanOrder) error
	// Failed, when set, is told about a batch Flush refused.
	Failed func(bans []BanOrder, err error)

	mu      sync.Mutex
	pending []BanOrder
	wake    chan struct{}
	once    sync.Once
}

func (b *Batcher) init() {
	b.once.Do(func() {
		b.wake = make(chan struct{}, 1)
		if b.Interval <= 0 {
			b.Interval = 10 * time.Millisecond
		}
		if b.MaxBatch <= 0 {
			b.MaxBatch = 4096
		}
	})
}

// Add queues a ban. It is safe for concurrent use.
func (b *Batcher) Add(ban BanOrder) {
	b.init()
	b.mu.Lock()
	b.pending = append(b.pending, ban)
	n := len(b.pending)
	b.mu.Unlock()
	if n == 1 || n >= b.MaxBatch {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Pending returns the number of bans waiting.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Run flushes batches until ctx ends, then flushes what is left (with a
// context of its own, for at most 2 s) and returns.
func (b *Batcher) Run(ctx context.Context) {
	b.init()
	var spare []BanOrder
	flush := func(ctx context.Context) {
		b.mu.Lock()
		batch := b.pending
		b.pending = spare[:0]
		b.mu.Unlock()
		all := batch
		for len(batch) > 0 {
			n := min(len(batch), b.MaxBatch)
			if err := b.Flush(ctx, batch[:n]); err != nil && b.Failed != nil {
				b.Failed(batch[:n], err)
			}
			batch = batch[n:]
		}
		clear(all) // no addresses kept alive
		spare = all[:0]
	}
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			flush(last)
			cancel()
			return
		case <-b.wake:
		}
		// Wait out the interval unless a full batch is already waiting.
		if b.Pending() < b.MaxBatch {
			t := time.NewTimer(b.Interval)
			select {
			case <-t.C:
			case <-b.wake:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
			}
		}
		flush(ctx)
	}
}
