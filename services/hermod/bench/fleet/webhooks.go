package fleet

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// AdminKey is the Bearer key of every fleet's API (and of the in-process
// benchmarks').
const AdminKey = "bench-admin-key-0123456789"

// CreateWebhooks creates one webhook per url for eventType through the
// REST API at base, as a user would, 16 requests at a time, and returns
// their ids in the order of urls.
func CreateWebhooks(tb testing.TB, hc *http.Client, base string, urls []string, eventType string) []string {
	tb.Helper()
	ids := make([]string, len(urls))
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
				req.Header.Set("Authorization", "Bearer "+AdminKey)
				resp, err := hc.Do(req)
				if err != nil {
					tb.Errorf("create webhook: %v", err)
					continue
				}
				answer, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				var created struct {
					ID string `json:"id"`
				}
				if resp.StatusCode != http.StatusCreated || json.Unmarshal(answer, &created) != nil || created.ID == "" {
					tb.Errorf("create webhook: %d %s", resp.StatusCode, answer)
					continue
				}
				ids[i] = created.ID
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
	return ids
}
