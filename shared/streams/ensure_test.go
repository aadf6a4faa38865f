package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// flakyMaker fails the first failures creates of each stream with err.
type flakyMaker struct {
	mu       sync.Mutex
	err      error
	failures int
	calls    map[string]int
}

func (m *flakyMaker) CreateOrUpdateStream(_ context.Context, c jetstream.StreamConfig) (jetstream.Stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls == nil {
		m.calls = map[string]int{}
	}
	m.calls[c.Name]++
	if m.calls[c.Name] <= m.failures {
		return nil, m.err
	}
	return nil, nil
}

// A cluster that does not answer yet (its streams' leaders are being
// elected) is waited for with backoff; a refused configuration fails at
// once; a server that never answers fails after EnsureFor.
func TestEnsureStreamsRetriesWhatMaySucceed(t *testing.T) {
	ctx := context.Background()
	subjects := []string{"alert.>"}
	t.Run("transient failures are tried again", func(t *testing.T) {
		for _, err := range []error{context.DeadlineExceeded, jetstream.ErrNoStreamResponse,
			&jetstream.APIError{Code: 503, Description: "JetStream system temporarily unavailable"},
			fmt.Errorf("wrapped: %w", &jetstream.APIError{Code: 500, Description: "no suitable peers for placement"})} {
			m := &flakyMaker{err: err, failures: 2}
			var retries []string
			s := Settings{Subjects: subjects, OnRetry: func(stream string, _ error, wait time.Duration) {
				if wait <= 0 || wait > 5*time.Second {
					t.Errorf("waits %v", wait)
				}
				retries = append(retries, stream)
			}}
			if err := EnsureStreams(ctx, m, s); err != nil {
				t.Fatalf("%v: %v", err, err)
			}
			if m.calls[EventsStream] != 3 || m.calls[DeadStream] != 3 || len(retries) != 10 {
				t.Errorf("%v: calls %v, %d retries reported; want 3 tries of each of the 5 streams", err, m.calls, len(retries))
			}
		}
	})
	t.Run("a refused configuration fails at once", func(t *testing.T) {
		m := &flakyMaker{err: &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse,
			Description: "subjects overlap with an existing stream"}, failures: 100}
		err := EnsureStreams(ctx, m, Settings{Subjects: subjects})
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || m.calls[EventsStream] != 1 {
			t.Errorf("error %v after %v calls, want the API error after one", err, m.calls)
		}
	})
	t.Run("gives up after EnsureFor", func(t *testing.T) {
		m := &flakyMaker{err: context.DeadlineExceeded, failures: 1 << 30}
		err := EnsureStreams(ctx, m, Settings{Subjects: subjects, EnsureFor: 300 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) || m.calls[EventsStream] < 2 {
			t.Errorf("error %v after %v calls, want the timeout after several tries", err, m.calls)
		}
	})
	t.Run("the caller's context ends the wait", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		m := &flakyMaker{err: jetstream.ErrNoStreamResponse, failures: 1 << 30}
		s := Settings{Subjects: subjects, OnRetry: func(string, error, time.Duration) { cancel() }}
		if err := EnsureStreams(cctx, m, s); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
}

// Services started together with a new three-node JetStream cluster all
// create the replicated streams at once, before the cluster has a leader:
// each waits for the cluster instead of failing (they used to exit with
// "context deadline exceeded", again and again, before anything ran).
func TestEnsureStreamsOnANewCluster(t *testing.T) {
	ports := make([]int, 3)
	for i := range ports {
		p, err := hermodtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	var nodes []*server.Server
	for i := range 3 {
		opts := &server.Options{ServerName: "n" + strconv.Itoa(i), Host: "127.0.0.1", Port: -1, JetStream: true,
			StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "ensure", Host: "127.0.0.1", Port: ports[i]}}
		for j, p := range ports {
			if j != i {
				opts.Routes = append(opts.Routes, server.RoutesFromStr("nats://127.0.0.1:"+strconv.Itoa(p))...)
			}
		}
		nodes = append(nodes, hermodtest.Server(t, opts))
	}
	errs := make(chan error, 6)
	var wg sync.WaitGroup
	for i := range 6 { // api, router and deliverers, spread over the nodes
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := nats.Connect(nodes[i%3].ClientURL())
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs <- err
				return
			}
			errs <- EnsureStreams(context.Background(), js, Settings{Subjects: []string{"alert.>"}, Replicas: 3})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
