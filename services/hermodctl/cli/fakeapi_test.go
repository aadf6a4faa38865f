package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is a small stand-in of the Hermod API on 127.0.0.1: each route
// answers what the test set, and every request is recorded.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	// routes map "METHOD /path" to a handler.
	routes map[string]http.HandlerFunc
	reqs   []recorded
}

type recorded struct {
	Method, Path, Query, Auth string
	Body                      []byte
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), body})
		h, ok := f.routes[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			writeJSON(w, 404, `{"code":"not_found","message":"route not found","details":{},"request_id":"RID404"}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// answer makes route answer status and body.
func (f *fakeAPI) answer(route string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, status, body) }
}

func (f *fakeAPI) handle(route string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

// last is the last request recorded.
func (f *fakeAPI) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		f.t.Fatal("no request reached the fake API")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// lastBody decodes the last request's JSON body.
func (f *fakeAPI) lastBody() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(f.last().Body, &m); err != nil {
		f.t.Fatalf("request body %q: %v", f.last().Body, err)
	}
	return m
}

// result is a run of hermodctl.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs hermodctl with args against the fake API (key "k") and env.
func (f *fakeAPI) run(t *testing.T, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env[EnvServer]; !ok {
		env[EnvServer] = f.srv.URL
	}
	if _, ok := env[EnvAPIKey]; !ok {
		env[EnvAPIKey] = "k"
	}
	if _, ok := env["HOME"]; !ok {
		env["HOME"] = t.TempDir() // no configuration file of the machine's user
	}
	return runWith(context.Background(), Env{Args: args, Stdin: strings.NewReader(stdin),
		Getenv: func(k string) string { return env[k] }})
}

func runWith(ctx context.Context, env Env) result {
	var out, errb syncBuffer
	env.Stdout, env.Stderr = &out, &errb
	code := Execute(ctx, env)
	return result{code, out.String(), errb.String()}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
