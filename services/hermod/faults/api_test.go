//go:build faults

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
)

// call sends method path (with body as JSON when not nil) to the fleet's
// API with the admin key and returns the status and the answer.
func call(f *fleet.Fleet, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.APIURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+fleet.AdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.HC.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, answer, err
}

// getAuthorized decodes the 200 answer of GET path into v.
func getAuthorized(f *fleet.Fleet, path string, v any) error {
	code, answer, err := call(f, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, answer)
	}
	return json.Unmarshal(answer, v)
}
