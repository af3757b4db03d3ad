package promhook

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
)

// Push sends the exporter's trm_ families to the Prometheus Pushgateway
// at url, replacing the group {job=job, run=<the run label>} (an HTTP
// PUT): a run pushed twice keeps only its latest state, and runs do not
// overwrite each other. The Go runtime and process families are left out:
// they describe a process that is about to exit.
//
// The run label moves from the series into the grouping key, and the
// Pushgateway puts it back on every series, so pushed series carry the
// job and run labels of scraped ones when Prometheus scrapes the
// Pushgateway with honor_labels: true (see deploy/prometheus/prometheus.yml);
// only instance differs (pushed series have none), and dashboards that
// select by run show both.
func (e *Exporter) Push(ctx context.Context, url, job string) error {
	if job == "" {
		job = DefaultPushJob
	}
	return push.New(url, job).
		Gatherer(prometheus.GathererFunc(e.gatherForPush)).
		Grouping("run", e.run).
		Client(&http.Client{Timeout: 30 * time.Second}).
		PushContext(ctx)
}

// gatherForPush is the registry's trm_ families without the run label.
func (e *Exporter) gatherForPush() ([]*dto.MetricFamily, error) {
	mfs, err := e.reg.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "trm_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := m.Label[:0]
			for _, l := range m.Label {
				if l.GetName() != "run" {
					ls = append(ls, l)
				}
			}
			m.Label = ls
		}
		out = append(out, mf)
	}
	return out, err
}
