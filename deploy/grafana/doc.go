// Package grafana holds brainy.json, a Grafana dashboard of the brainy_*
// metrics cores and edges serve at /metrics, and the test that keeps it
// true to the collectors of packages httpapi and edge: a metric renamed
// there fails the test instead of leaving a panel quietly empty.
package grafana
