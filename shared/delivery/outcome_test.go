package delivery_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func TestClassifyTable(t *testing.T) {
	for _, c := range []struct {
		status int
		want   delivery.Class
	}{
		{200, delivery.Success}, {201, delivery.Success}, {202, delivery.Success}, {204, delivery.Success}, {299, delivery.Success},
		{300, delivery.Retryable}, {301, delivery.Retryable}, {302, delivery.Retryable}, {303, delivery.Retryable}, {304, delivery.Retryable},
		{307, delivery.Retryable}, {308, delivery.Retryable},
		{400, delivery.Terminal}, {401, delivery.Terminal}, {403, delivery.Terminal}, {404, delivery.Terminal},
		{405, delivery.Terminal}, {409, delivery.Terminal}, {410, delivery.Terminal}, {413, delivery.Terminal},
		{415, delivery.Terminal}, {422, delivery.Terminal}, {451, delivery.Terminal}, {499, delivery.Terminal},
		{408, delivery.Retryable}, {425, delivery.Retryable}, {429, delivery.Retryable},
		{500, delivery.Retryable}, {501, delivery.Retryable}, {502, delivery.Retryable}, {503, delivery.Retryable},
		{504, delivery.Retryable}, {599, delivery.Retryable},
		{0, delivery.Retryable}, // no response: timeout or connection error
	} {
		if got := delivery.Classify(c.status); got != c.want {
			t.Errorf("Classify(%d) = %s, want %s", c.status, got, c.want)
		}
	}
}

func TestClassStrings(t *testing.T) {
	for c, want := range map[delivery.Class]string{delivery.Success: "success", delivery.Retryable: "retryable", delivery.Terminal: "terminal"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q", int(c), c.String())
		}
	}
}

func TestMaxAttemptsFromMaxRetries(t *testing.T) {
	for retries, want := range map[int]int{0: 1, 1: 1, 2: 2, 5: 5, 10: 10} {
		if got := (&webhooks.Webhook{MaxRetries: retries}).MaxAttempts(); got != want {
			t.Errorf("max_retries %d: MaxAttempts = %d, want %d", retries, got, want)
		}
	}
}

func TestBackoffScheduleTable(t *testing.T) {
	for _, c := range []struct {
		n              int
		base, min, max time.Duration
	}{
		{1, 2 * time.Second, 1800 * time.Millisecond, 2200 * time.Millisecond},
		{2, 4 * time.Second, 3600 * time.Millisecond, 4400 * time.Millisecond},
		{3, 8 * time.Second, 7200 * time.Millisecond, 8800 * time.Millisecond},
		{4, 16 * time.Second, 14400 * time.Millisecond, 17600 * time.Millisecond},
		{5, 32 * time.Second, 28800 * time.Millisecond, 35200 * time.Millisecond},
		{0, 2 * time.Second, 1800 * time.Millisecond, 2200 * time.Millisecond},  // clamped to the first
		{-3, 2 * time.Second, 1800 * time.Millisecond, 2200 * time.Millisecond}, // clamped to the first
	} {
		t.Run("n="+strconv.Itoa(c.n), func(t *testing.T) {
			if got := delivery.Backoff(c.n, 0); got != c.base {
				t.Errorf("Backoff(%d, 0) = %s, want %s", c.n, got, c.base)
			}
			if got := delivery.Backoff(c.n, -1); got != c.min {
				t.Errorf("Backoff(%d, -1) = %s, want %s", c.n, got, c.min)
			}
			if got := delivery.Backoff(c.n, 1); got != c.max {
				t.Errorf("Backoff(%d, 1) = %s, want %s", c.n, got, c.max)
			}
			for i := 0; i < 200; i++ {
				j := delivery.Jitter()
				if j < -1 || j > 1 {
					t.Fatalf("Jitter() = %v", j)
				}
				if got := delivery.Backoff(c.n, j); got < c.min || got > c.max {
					t.Fatalf("Backoff(%d, %v) = %s outside [%s, %s]", c.n, j, got, c.min, c.max)
				}
			}
		})
	}
	// The exponent is capped, so a huge attempt count neither overflows nor
	// goes negative.
	for _, n := range []int{21, 64, 100, 1 << 30} {
		if got := delivery.Backoff(n, 1); got <= 0 || got != delivery.Backoff(20, 1) {
			t.Errorf("Backoff(%d, 1) = %s", n, got)
		}
	}
}

func TestParseRetryAfterTable(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", 0},
		{"zero", "0", 0},
		{"seconds", "7", 7 * time.Second},
		{"seconds with spaces", "  30\t", 30 * time.Second},
		{"one hour", "3600", time.Hour},
		{"over one hour capped", "3601", time.Hour},
		{"a day capped", "86400", time.Hour},
		{"negative", "-1", 0},
		{"negative large", "-86400", 0},
		{"fractional", "1.5", 0},
		{"garbage", "soon", 0},
		{"number with unit", "10s", 0},
		{"HTTP date 2 minutes ahead", now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{"HTTP date 2 hours ahead capped", now.Add(2 * time.Hour).Format(http.TimeFormat), time.Hour},
		{"HTTP date now", now.Format(http.TimeFormat), 0},
		{"HTTP date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"RFC 850 date", now.Add(10 * time.Second).Format(time.RFC850), 10 * time.Second},
		{"ANSI C date", now.Add(20 * time.Second).Format(time.ANSIC), 20 * time.Second},
		{"RFC 3339 is not an HTTP date", now.Add(time.Minute).Format(time.RFC3339), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := delivery.ParseRetryAfter(c.in, now); got != c.want {
				t.Errorf("ParseRetryAfter(%q) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

// A Retry-After in seconds is multiplied into a time.Duration before it is
// capped, so a large value overflows int64 nanoseconds.
func TestParseRetryAfterHugeSeconds(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var wrong []string
	for _, in := range []string{"9223372037", "18446744074", "99999999999"} {
		if got := delivery.ParseRetryAfter(in, now); got != time.Hour {
			wrong = append(wrong, in+" → "+got.String())
		}
	}
	if len(wrong) > 0 {
		t.Errorf("regression: ParseRetryAfter overflows for huge second counts "+
			"instead of capping at 1h: %s", strings.Join(wrong, ", "))
	}
}

func TestParseCIDRsTable(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want []string // nil with fail=false means empty
		fail bool
	}{
		{"empty", "", nil, false},
		{"blank", "   ", nil, false},
		{"none", "none", nil, false},
		{"none with spaces", " none ", nil, false},
		{"one v4", "127.0.0.0/8", []string{"127.0.0.0/8"}, false},
		{"host bits are masked", "10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"v4 and v6 with spaces", " 127.0.0.0/8 , ::1/128 ", []string{"127.0.0.0/8", "::1/128"}, false},
		{"v6 masked", "fd00:1::5/16", []string{"fd00::/16"}, false},
		{"empty entries skipped", "10.0.0.0/8,,192.168.0.0/16,", []string{"10.0.0.0/8", "192.168.0.0/16"}, false},
		{"single host /32", "203.0.113.7/32", []string{"203.0.113.7/32"}, false},
		{"address without prefix", "10.0.0.1", nil, true},
		{"bad entry among good", "127.0.0.0/8,bogus", nil, true},
		{"prefix too long", "10.0.0.0/33", nil, true},
		{"hostname", "localhost/8", nil, true},
		{"semicolon separated", "10.0.0.0/8;127.0.0.0/8", nil, true},
		{"NONE is not none", "NONE", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := delivery.ParseCIDRs(c.in)
			if (err != nil) != c.fail {
				t.Fatalf("ParseCIDRs(%q) = %v, %v; want fail=%v", c.in, got, err, c.fail)
			}
			if c.fail {
				if !strings.Contains(err.Error(), "CIDR") {
					t.Errorf("error %q does not say CIDR", err)
				}
				return
			}
			var want []netip.Prefix
			for _, s := range c.want {
				want = append(want, netip.MustParsePrefix(s))
			}
			if len(got) != len(want) {
				t.Fatalf("ParseCIDRs(%q) = %v, want %v", c.in, got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("ParseCIDRs(%q)[%d] = %s, want %s", c.in, i, got[i], want[i])
				}
			}
		})
	}
}
