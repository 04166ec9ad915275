package feeds

import (
	"context"
	"net/netip"

	"github.com/sipwall/sipwall/internal/backend"
)

// ListName is the list that holds feed name's entries.
func ListName(name string) string { return "feed-" + name }

// StoreSink replaces a feed's list in the set store, in one transaction.
type StoreSink struct{ Store backend.SetStore }

// Replace implements Sink.
func (s StoreSink) Replace(ctx context.Context, feed string, prefixes []netip.Prefix) error {
	list := ListName(feed)
	es := make([]backend.Entry, len(prefixes))
	for i, p := range prefixes {
		es[i] = backend.Entry{List: list, Prefix: p, Comment: "feed " + feed}
	}
	return s.Store.Replace(ctx, list, es)
}
