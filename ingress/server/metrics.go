package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingress's Prometheus metrics. Create one set per
// registry; never use the global default registry.
type Metrics struct {
	Requests  *prometheus.CounterVec
	Forms     *prometheus.CounterVec
	Durations *prometheus.HistogramVec
}

// NewMetrics registers the ingress metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gallerist_requests_total",
			Help: "Marketplace calls answered, by route, activity, result code and debug flag.",
		}, []string{"route", "activity", "code", "debug"}),
		Forms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gallerist_signature_form_total",
			Help: "V2 signatures verified, by the canonical payload form that matched (auth.md §2.3).",
		}, []string{"route", "form"}),
		Durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gallerist_request_duration_seconds",
			Help:    "Time from request to answer, by route and activity.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2, 4.5},
		}, []string{"route", "activity"}),
	}
	reg.MustRegister(m.Requests, m.Forms, m.Durations)
	return m
}
