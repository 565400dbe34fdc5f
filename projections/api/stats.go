package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/projections/views"
)

// Stats is the answer of GET /v1/stats.
type Stats struct {
	From      string `json:"from" doc:"First day (UTC), as asked."`
	To        string `json:"to" doc:"Last day (UTC, inclusive), as asked."`
	ProductID string `json:"productId,omitempty" doc:"The product asked for; absent for all products."`
	// Days has every day of the range, in order.
	Days []DayStats `json:"days" doc:"Every day of the range, in order, with the count of every metric (0 included), summed over products."`
	// Facts are the daily_facts rows of the range.
	Facts   []views.DailyFact `json:"facts" doc:"The non-zero daily facts of the range per product (productId \"\" while unknown), ordered by day, product and metric."`
	Latency Latency           `json:"provisioningLatency" doc:"Provisioning latency of the instances provisioned during the range."`
	// ConsistentTo is the lower of the facts and instances views'
	// checkpoints.
	ConsistentTo uint64 `json:"consistentTo" doc:"Every figure reflects every event up to this sequence: the lower of the facts view's and the instances view's checkpoints."`
}

// DayStats is one day's counts.
type DayStats struct {
	Day    string           `json:"day" doc:"The day (UTC), YYYY-MM-DD."`
	Counts map[string]int64 `json:"counts" doc:"Count per metric: new and trial (instances created that day; moved to trial once Query Order calls the creating order a trial), trial_to_formal, renewed, renewal_cancelled, renewal_changed, upgraded, frozen, unfrozen, released, provisioned, provisioning_failed."`
}

// Latency summarises provisioning latency: time from InstanceCreated to
// the first InstanceProvisioned, in milliseconds (nearest-rank
// percentiles; every figure 0 when count is 0).
type Latency struct {
	Count int64   `json:"count" doc:"Instances provisioned during the range."`
	MinMS int64   `json:"minMs"`
	MaxMS int64   `json:"maxMs"`
	AvgMS float64 `json:"avgMs"`
	P50MS int64   `json:"p50Ms"`
	P90MS int64   `json:"p90Ms"`
	P99MS int64   `json:"p99Ms"`
}

func (s *Server) stats(c *gin.Context) {
	q, ferr := parseQuery(c, statsParams)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	from, ferr := q.date("from")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	to, ferr := q.date("to")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	product, ferr := q.text("productId")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if to.Before(from) {
		writeError(c, http.StatusBadRequest, "must not be before from", "to")
		return
	}
	days := int(to.Sub(from)/(24*time.Hour)) + 1
	if days > maxStatsDays {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("the range spans %d days; at most %d", days, maxStatsDays), "to")
		return
	}
	fq := views.FactsQuery{From: from, To: to}
	lq := views.LatencyQuery{From: from, To: to.AddDate(0, 0, 1), ProductID: product}
	if product != "" {
		fq.Products = []string{product}
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	facts, err := s.views.DailyFacts(ctx, fq)
	if err != nil {
		s.failed(c, "daily facts", err)
		return
	}
	lat, err := s.views.ProvisioningLatency(ctx, lq)
	if err != nil {
		s.failed(c, "provisioning latency", err)
		return
	}
	out := Stats{
		From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), ProductID: product,
		Days: make([]DayStats, days), Facts: facts.Facts,
		Latency: Latency{
			Count: lat.Count, MinMS: lat.MinMS, MaxMS: lat.MaxMS, AvgMS: lat.AvgMS,
			P50MS: lat.P50MS, P90MS: lat.P90MS, P99MS: lat.P99MS,
		},
		ConsistentTo: min(facts.Seq, lat.Seq),
	}
	if out.Facts == nil {
		out.Facts = []views.DailyFact{}
	}
	index := make(map[string]int, days)
	for i := range out.Days {
		d := from.AddDate(0, 0, i).Format(time.DateOnly)
		out.Days[i] = DayStats{Day: d, Counts: make(map[string]int64, len(views.Metrics))}
		for _, m := range views.Metrics {
			out.Days[i].Counts[m] = 0
		}
		index[d] = i
	}
	for _, f := range facts.Facts {
		if i, ok := index[f.Day]; ok {
			out.Days[i].Counts[f.Metric] += f.Count
		}
	}
	setConsistency(c, out.ConsistentTo)
	writeJSON(c, http.StatusOK, out)
}
