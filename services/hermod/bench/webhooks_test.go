package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// adminKey is the Bearer key of every benchmark's API.
const adminKey = "bench-admin-key-0123456789"

// createWebhooks creates one webhook per url for eventType through the
// REST API at base, as a user would, 16 requests at a time.
func createWebhooks(tb testing.TB, hc *http.Client, base string, urls []string, eventType string) {
	tb.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body, _ := json.Marshal(map[string]any{"name": "bench-" + strconv.Itoa(i), "url": urls[i],
					"event_types": []string{eventType}})
				req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/webhooks", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+adminKey)
				resp, err := hc.Do(req)
				if err != nil {
					tb.Errorf("create webhook: %v", err)
					continue
				}
				answer, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					tb.Errorf("create webhook: %d %s", resp.StatusCode, answer)
				}
			}
		}()
	}
	for i := range urls {
		work <- i
	}
	close(work)
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
}
