package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
)

// kickRecorder is an AgentKicker that remembers whom it kicked.
type kickRecorder struct {
	mu     sync.Mutex
	kicked []string
}

func (k *kickRecorder) KickAgent(ctx context.Context, agentID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ctx.Err() == nil {
		k.kicked = append(k.kicked, agentID)
	}
}

func (k *kickRecorder) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.kicked)
}

// The REST handlers ask the control plane (through AgentKicker) to kick an
// agent whose labels changed or that was revoked, before they answer, and
// never for an update that leaves its labels as they were.
func TestAgentGrantChangesAskForKicks(t *testing.T) {
	const key = "admin-key-a-0123456789"
	rd := hermodtest.StartRedis(t)
	k := &kickRecorder{}
	s := newTestServer(store.New(rd.Client(t), nil), k, zerolog.Nop(), key)
	call := func(method, path string, body any) int {
		t.Helper()
		data, _ := json.Marshal(body)
		req := httptest.NewRequest(method, path, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if c := call("POST", "/api/v1/agents", map[string]any{"id": "eu-1", "labels": []string{"env:production"}}); c != http.StatusCreated {
		t.Fatalf("create: %d", c)
	}
	if c := call("PUT", "/api/v1/agents/eu-1", map[string]any{"labels": []string{"env:production"}}); c != http.StatusOK {
		t.Fatalf("same labels: %d", c)
	}
	if got := k.list(); len(got) != 0 {
		t.Fatalf("kicked %v after a create and an update that changed nothing", got)
	}
	if c := call("PUT", "/api/v1/agents/eu-1", map[string]any{"labels": []string{"env:production", "region:eu"}}); c != http.StatusOK {
		t.Fatalf("new labels: %d", c)
	}
	if got := k.list(); !slices.Equal(got, []string{"eu-1"}) {
		t.Fatalf("after a grant change kicked %v, want [eu-1]", got)
	}
	if c := call("DELETE", "/api/v1/agents/eu-1", nil); c != http.StatusNoContent {
		t.Fatalf("delete: %d", c)
	}
	if got := k.list(); !slices.Equal(got, []string{"eu-1", "eu-1"}) {
		t.Fatalf("after a revocation kicked %v, want [eu-1 eu-1]", got)
	}
}
