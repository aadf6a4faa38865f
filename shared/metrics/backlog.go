package metrics

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermodhq/hermod/shared/streams"
)

// BacklogCollector reports, at scrape time and from JetStream itself, each
// webhook's backlog (queued, delayed and held deliveries), the age of the
// oldest one for the largest backlogs, and the dead-letter depth.
type BacklogCollector struct {
	js          jetstream.JetStream
	oldestTopN  int
	backlog     *prometheus.Desc
	oldest      *prometheus.Desc
	deadDepth   *prometheus.Desc
	scrapeError *prometheus.Desc
}

// NewBacklogCollector builds the collector; register it on a registry.
func NewBacklogCollector(js jetstream.JetStream) *BacklogCollector {
	return &BacklogCollector{js: js, oldestTopN: 50,
		backlog: prometheus.NewDesc("hermod_webhook_backlog", "Deliveries waiting per webhook, by state (queued, delayed, held, agent).",
			[]string{"webhook_id", "state"}, nil),
		oldest: prometheus.NewDesc("hermod_webhook_backlog_oldest_seconds", "Age of the oldest waiting delivery (the 50 largest backlogs).",
			[]string{"webhook_id"}, nil),
		deadDepth:   prometheus.NewDesc("hermod_dead_letters", "Messages in the dead-letter stream.", nil, nil),
		scrapeError: prometheus.NewDesc("hermod_backlog_scrape_error", "1 when JetStream could not be read for this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.oldest
	ch <- c.deadDepth
	ch <- c.scrapeError
}

type subjectCount struct {
	stream  jetstream.Stream
	subject string
	webhook string
	n       uint64
}

// Collect implements prometheus.Collector.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	failed := 0.0
	var counts []subjectCount
	perWebhook := map[string]uint64{}
	for _, src := range []struct {
		stream string
		filter string
	}{{streams.DeliveriesStream, streams.AllSubjects}, {streams.HeldStream, streams.HeldPrefix + ">"}} {
		st, err := c.js.Stream(ctx, src.stream)
		if err != nil {
			failed = 1
			continue
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(src.filter))
		if err != nil {
			failed = 1
			continue
		}
		for subj, n := range info.State.Subjects {
			state, webhook := classify(subj)
			if webhook == "" {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n), webhook, state)
			counts = append(counts, subjectCount{stream: st, subject: subj, webhook: webhook, n: n})
			perWebhook[webhook] += n
		}
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].n > counts[j].n })
	oldest := map[string]time.Time{}
	for i, sc := range counts {
		if i >= c.oldestTopN {
			break
		}
		m, err := sc.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(sc.subject))
		if err != nil {
			continue
		}
		if o, ok := oldest[sc.webhook]; !ok || m.Time.Before(o) {
			oldest[sc.webhook] = m.Time
		}
	}
	for wh, t := range oldest {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, time.Since(t).Seconds(), wh)
	}
	if dead, err := c.js.Stream(ctx, streams.DeadStream); err == nil {
		if info, err := dead.Info(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.deadDepth, prometheus.GaugeValue, float64(info.State.Msgs))
		} else {
			failed = 1
		}
	} else {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeError, prometheus.GaugeValue, failed)
}

// classify maps a subject to (state, webhook id).
func classify(subject string) (string, string) {
	switch {
	case strings.HasPrefix(subject, streams.DeliverPrefix):
		return "queued", subject[len(streams.DeliverPrefix):]
	case strings.HasPrefix(subject, streams.DelayPrefix):
		return "delayed", subject[len(streams.DelayPrefix):]
	case strings.HasPrefix(subject, streams.HeldPrefix):
		return "held", subject[len(streams.HeldPrefix):]
	case strings.HasPrefix(subject, streams.AgentPrefix):
		rest := subject[len(streams.AgentPrefix):]
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			return "agent", rest[i+1:]
		}
	}
	return "", ""
}
