package metrics

import (
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// vec is a labelled series read at scrape time: read returns a value per label
// value. The values listed are always shown (0 when read has none); a value
// read returns beyond them is shown too, since only this package's own
// readers decide them (fixed words such as kv's states).
type vec struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	values []string
	read   func() map[string]float64
}

func newVec(name, help string, typ prometheus.ValueType, label string, values []string, read func() map[string]float64) *vec {
	return &vec{desc: prometheus.NewDesc(name, help, []string{label}, nil), typ: typ, values: values, read: read}
}

func (v *vec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

func (v *vec) Collect(ch chan<- prometheus.Metric) {
	got := v.read()
	for _, l := range v.values {
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, got[l], l)
	}
	var more []string
	for l := range got {
		if !slices.Contains(v.values, l) {
			more = append(more, l)
		}
	}
	sort.Strings(more)
	for _, l := range more {
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, got[l], l)
	}
}

// storeCollector reads the queue and outbox figures once per scrape.
type storeCollector struct {
	store Store
	now   func() time.Time

	depth, recipients, oldest, outbox, outboxOldest *prometheus.Desc
}

func newStoreCollector(store Store, now func() time.Time) *storeCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &storeCollector{
		store: store, now: now,
		depth:      d("sipsilo_queue_messages", "Messages queued for delivery."),
		recipients: d("sipsilo_queue_recipients", "Recipients with at least one queued message."),
		oldest:     d("sipsilo_queue_oldest_age_seconds", "Age of the oldest message at the head of a queue (0 when nothing is queued)."),
		outbox:     d("sipsilo_mirror_backlog_records", "Outbox records waiting for the MySQL mirror (0 without a mirror)."),
		outboxOldest: d("sipsilo_mirror_backlog_oldest_age_seconds",
			"Age of the oldest outbox record waiting for the mirror (0 when none): how far MySQL's history is behind."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.recipients, c.oldest, c.outbox, c.outboxOldest} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	if q, err := c.store.QueueStats(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
	} else {
		gauge(c.depth, float64(q.Depth))
		gauge(c.recipients, float64(q.Recipients))
		gauge(c.oldest, age(now, q.Oldest))
	}
	if o, err := c.store.OutboxStats(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.outbox, err)
	} else {
		gauge(c.outbox, float64(o.Records))
		gauge(c.outboxOldest, age(now, o.Oldest))
	}
}

// age is now − t in seconds, 0 for a zero t (and never negative: clocks step).
func age(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(now.Sub(t).Seconds(), 0)
}
