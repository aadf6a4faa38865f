package receiver

import (
	"testing"
	"time"
)

func TestTallyCountsDuplicatesAndLatency(t *testing.T) {
	tl := NewTally()
	base := time.Unix(1000, 0)
	for i, d := range []time.Duration{10, 20, 30, 40} {
		tl.Record(Fast, "msg_"+string(rune('a'+i)), base.Add(d*time.Millisecond), base.UnixNano())
	}
	tl.Record(Fast, "msg_a", base.Add(time.Second), base.UnixNano()) // again: a duplicate, no new latency
	tl.Record(Fast, "", base.Add(50*time.Millisecond), base.UnixNano())
	tl.Record(Fast, "msg_z", base.Add(60*time.Millisecond), 0)
	tl.Record(Fail, "msg_f", base, base.UnixNano())

	got := tl.Stats()
	f := got[Fast]
	want := Counts{Requests: 7, Distinct: 5, Duplicates: 1, NoID: 1, NoSendTime: 1,
		FirstNS: base.Add(10 * time.Millisecond).UnixNano(), LastNS: base.Add(time.Second).UnixNano()}
	if f.Counts != want {
		t.Errorf("counts %+v, want %+v", f.Counts, want)
	}
	if f.P50MS != 20 || f.P99MS != 40 || f.MaxMS != 40 {
		t.Errorf("latency p50 %v p99 %v max %v, want 20 40 40", f.P50MS, f.P99MS, f.MaxMS)
	}
	if f.Span() != 990*time.Millisecond {
		t.Errorf("span %s", f.Span())
	}
	if c := tl.Counts(); c[Fail].Requests != 1 || c[Fail].Distinct != 1 || len(c) != 2 {
		t.Errorf("counts by prefix %+v", c)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := Percentile(l, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Errorf("empty")
	}
}
