// Package metrics turns checker's state into Prometheus metrics in the text
// exposition format: for `GET /metrics` of checker serve and for the
// textfile that checker cron leaves for node_exporter's textfile collector.
//
// The metric families are built as client_model values and written by the
// text encoder of prometheus/common/expfmt, without the registry of
// client_golang's prometheus package: that package registers the Go and
// process collectors when it is initialised, which every `checker cron
// minute` would pay for (about 0.9 ms, measured), and checker computes its
// metrics from the state on demand rather than keeping collectors.
package metrics
