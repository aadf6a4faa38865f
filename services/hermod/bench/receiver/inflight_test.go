package receiver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

func TestHandlerCountsRequestsOpenAtOnce(t *testing.T) {
	h := &Handler{Tally: NewTally(), Inflight: NewInflight(), SlowDelay: 30 * time.Second}
	srv := httptest.NewServer(h)
	defer srv.Close()
	inflight := func() map[string]Concurrency {
		var c map[string]Concurrency
		getJSON(t, srv.URL+"/inflight", &c)
		return c
	}
	if code := postStatus(t, srv.URL+"/fail/b/1"); code != 500 {
		t.Fatalf("fail: %d", code)
	}
	// Three slow requests held open, cut short by the server's close.
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/slow/b/1", strings.NewReader("{}"))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}()
	}
	hermodtest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if c := inflight()[Slow]; c != (Concurrency{Now: 3, Max: 3}) {
			return fmt.Errorf("slow open %+v, want 3 now and at most", c)
		}
		return nil
	})
	if c := inflight()[Fail]; c != (Concurrency{Now: 0, Max: 1}) {
		t.Errorf("fail %+v, want none open, 1 at most", c)
	}
	srv.CloseClientConnections()
	wg.Wait()
	hermodtest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if c := inflight()[Slow]; c != (Concurrency{Now: 0, Max: 3}) {
			return fmt.Errorf("slow open %+v after the close, want none now, 3 at most", c)
		}
		return nil
	})
	srv.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
}

func TestHandlerWithoutInflightHasNoRoute(t *testing.T) {
	srv := httptest.NewServer(&Handler{Tally: NewTally()})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/inflight")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /inflight without Inflight: %d, want 404", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}

func postStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
