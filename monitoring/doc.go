// Package monitoring holds Sluice's observability configuration as files: the Prometheus
// scrape configuration and alert rules with their unit tests (prometheus/), the
// Alertmanager routing (alertmanager/) and the Grafana dashboards. Its Go code exists to
// check those files: the tests run the real tools, promtool and amtool, which must be on
// PATH (`make deps` installs them from the Debian packages prometheus and
// prometheus-alertmanager).
package monitoring
