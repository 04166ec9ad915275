package system

import (
	"context"
	"errors"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestToolErrors runs the real tools in a fresh namespace and checks that
// their failures come back typed.
func TestToolErrors(t *testing.T) {
	nstest.RequireRoot(t, "nft", "ipset")
	x := Exec{NS: nstest.New(t, "sys")}
	ctx := context.Background()
	_, err := x.Run(ctx, nil, "nft", "list", "table", "inet", "nosuch")
	var te *backend.ToolError
	if !errors.As(err, &te) || te.Tool != "nft" || te.Stderr == "" || !backend.IsNotFound(err) {
		t.Errorf("nft on a missing table: %#v", err)
	}
	if _, err := x.Run(ctx, nil, "ipset", "list", "nosuch"); !backend.IsNotFound(err) {
		t.Errorf("ipset on a missing set: %v", err)
	}
	if _, err := x.Run(ctx, nil, "nft", "list", "ruleset"); err != nil {
		t.Errorf("nft list ruleset: %v", err)
	}
	var missing *backend.MissingToolError
	if _, err := x.Run(ctx, nil, "no-such-tool-here"); !errors.As(err, &missing) {
		t.Errorf("a missing tool: %v", err)
	}
}
