package delivery

import (
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		codes []int
		want  Class
	}{
		{[]int{200, 201, 202, 204, 299}, Success},
		{[]int{0, 408, 425, 429, 500, 502, 503, 504, 599}, Retryable},
		{[]int{300, 301, 302, 304, 307, 308}, Retryable},
		{[]int{400, 401, 403, 404, 405, 410, 413, 422, 451}, Terminal},
	} {
		for _, code := range c.codes {
			if got := Classify(code); got != c.want {
				t.Errorf("Classify(%d) = %s, want %s", code, got, c.want)
			}
		}
	}
}

func TestBackoffSchedule(t *testing.T) {
	for n, base := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 4: 16 * time.Second, 5: 32 * time.Second} {
		if got := Backoff(n, 0); got != base {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, base)
		}
		lo, hi := Backoff(n, -1), Backoff(n, 1)
		if lo != base*9/10 || hi != base*11/10 {
			t.Errorf("Backoff(%d) jitter bounds %s..%s", n, lo, hi)
		}
	}
	for i := 0; i < 1000; i++ {
		j := Jitter()
		if j < -1 || j > 1 {
			t.Fatalf("jitter %v out of [-1,1]", j)
		}
	}
	if Backoff(100, 0) != Backoff(20, 0) {
		t.Errorf("backoff is not capped")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {" 120 ", 2 * time.Minute}, {"-3", 0}, {"soon", 0},
		{"999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := ParseRetryAfter(c.in, now); got != c.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestParseCIDRs(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"", 0, false}, {"none", 0, false}, {"127.0.0.0/8", 1, false}, {"127.0.0.0/8, ::1/128", 2, false},
		{"10.0.0.1", 0, true}, {"127.0.0.0/8,bogus", 0, true},
	} {
		got, err := ParseCIDRs(c.in)
		if (err != nil) != c.fail || len(got) != c.n {
			t.Errorf("ParseCIDRs(%q) = %v, %v", c.in, got, err)
		}
	}
}
