// Package delivery makes webhook HTTP requests and classifies their answers
// (Classify, Backoff, ParseRetryAfter); what then becomes of the delivery is
// decided by dispatch.Decide. Both the broker deliverer and the agent use
// it, so headers, signatures, timeouts and retry policy are the same
// everywhere.
package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is the outcome of one HTTP attempt.
type Class int

// Attempt classes.
const (
	Success   Class = iota // 2xx
	Retryable              // 408, 425, 429, 5xx, 3xx, timeouts, connection errors
	Terminal               // any other 4xx (or a refused destination): dead at once
)

func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	default:
		return "terminal"
	}
}

// Classify maps an HTTP status code (0 = no response) to a class.
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Success
	case status == 0:
		return Retryable
	case status == 408 || status == 425 || status == 429:
		return Retryable
	case status >= 300 && status < 400:
		return Retryable
	case status >= 500:
		return Retryable
	default:
		return Terminal
	}
}

// MaxRetryAfter caps a Retry-After header.
const MaxRetryAfter = time.Hour

// Backoff is 2^n seconds ±10% after the n-th failed attempt; jitter in [-1,1].
func Backoff(n int, jitter float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 20 {
		n = 20
	}
	base := time.Duration(1<<n) * time.Second
	return base + time.Duration(float64(base)*0.1*jitter)
}

// Jitter returns a random value in [-1, 1].
func Jitter() float64 { return rand.Float64()*2 - 1 }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) { // too large to parse or to multiply: capped
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if strings.HasPrefix(v, "-") && isDigits(v[1:]) {
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			return 0
		}
		return min(d, MaxRetryAfter)
	}
	return 0
}
