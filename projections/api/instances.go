package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/views"
)

// InstanceList is the answer of GET /v1/instances.
type InstanceList struct {
	Instances  []views.Instance `json:"instances" doc:"One page of instances, in the requested order."`
	NextCursor string           `json:"nextCursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
	// ConsistentTo is the instances view's checkpoint.
	ConsistentTo uint64 `json:"consistentTo" doc:"The page reflects every event of the log up to this sequence (the instances view's checkpoint), and none after."`
}

// Event is one event of an instance's history, its data redacted.
type Event struct {
	Seq        uint64          `json:"seq" doc:"Stream sequence of the event."`
	ID         string          `json:"id" doc:"Event id."`
	Type       string          `json:"type" doc:"Event type, e.g. InstanceCreated."`
	Version    int             `json:"version" doc:"Schema version of data."`
	OccurredAt time.Time       `json:"occurredAt"`
	Causation  event.Causation `json:"causation" doc:"The request (or actor) that caused the event."`
	Data       json.RawMessage `json:"data" doc:"The event body as stored, with every password (and secret) replaced by \"[redacted]\"."`
}

// InstanceDetail is the answer of GET /v1/instances/{id}.
type InstanceDetail struct {
	Instance *views.Instance `json:"instance" doc:"The instance's row in the instances view; null while the view has not yet applied the instance's creation (the log has it)."`
	// ConsistentTo is the instances view's checkpoint.
	ConsistentTo uint64  `json:"consistentTo" doc:"instance reflects every event up to this sequence (the instances view's checkpoint)."`
	Events       []Event `json:"events" doc:"The instance's full history from the log, oldest first; read after the row, so it may hold events the row does not reflect yet."`
	// EventsConsistentTo is the sequence of the last event read.
	EventsConsistentTo uint64 `json:"eventsConsistentTo" doc:"The sequence of the last event read from the log: the history is complete up to it."`
}

// maxIDLen bounds an instance id in a path.
const maxIDLen = 256

func (s *Server) listInstances(c *gin.Context) {
	q, ferr := parseQuery(c, s.listParams())
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	f, ferr := instanceFilter(q)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	p, ferr := page(q)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	pg, err := s.views.ListInstances(ctx, f, p)
	out := InstanceList{Instances: pg.Instances, NextCursor: pg.Next, ConsistentTo: pg.Seq}
	if out.Instances == nil {
		out.Instances = []views.Instance{}
	}
	s.answerPage(c, "instances", err, pg.Seq, out)
}

// pathID reads the id path parameter of a GET of one thing (what names
// it in the error): no query parameters, 1..maxIDLen bytes of text. It
// answers the error itself and reports false.
func pathID(c *gin.Context, what string) (string, bool) {
	if _, ferr := parseQuery(c, nil); ferr != nil {
		writeFieldError(c, ferr)
		return "", false
	}
	id := c.Param("id")
	if id == "" || len(id) > maxIDLen {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s id has 1..%d bytes", what, maxIDLen), "id")
		return "", false
	}
	if ferr := checkText("id", id); ferr != nil {
		writeFieldError(c, ferr)
		return "", false
	}
	return id, true
}

func (s *Server) getInstance(c *gin.Context) {
	id, ok := pathID(c, "an instance")
	if !ok {
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	out := InstanceDetail{Events: []Event{}}
	row, seq, err := s.views.GetInstance(ctx, id)
	switch {
	case err == nil:
		out.Instance = &row
	case errors.Is(err, views.ErrNotFound):
	default:
		s.failed(c, "the instance", err)
		return
	}
	out.ConsistentTo = seq
	recs, err := s.log.Load(ctx, eventstore.StreamID{Kind: instance.Kind, Keys: []string{id}}, 0)
	if err != nil {
		s.failed(c, "the instance's history", err)
		return
	}
	if out.Instance == nil && len(recs) == 0 {
		writeError(c, http.StatusNotFound, "no such instance", "id")
		return
	}
	for _, r := range recs {
		out.Events = append(out.Events, Event{
			Seq: r.Seq, ID: r.Event.ID, Type: r.Event.Type, Version: r.Event.Version,
			OccurredAt: r.Event.OccurredAt, Causation: r.Event.Causation, Data: Redact(r.Event.Data),
		})
		out.EventsConsistentTo = r.Seq
	}
	setConsistency(c, out.ConsistentTo)
	writeJSON(c, http.StatusOK, out)
}

// ConsistencyTrailer is the trailer of a CSV export: the sequence its last
// page was consistent to.
const ConsistencyTrailer = "Gallerist-Consistent-To-End"

// exportInstances streams every instance matching the filters as CSV, one
// page of MaxPageSize rows at a time (flushed after each). Each page is
// its own read: the header states the first page's sequence (every row
// reflects at least the events up to it), the trailer the last page's; a
// row's lastEventSeq tells whether it reflects later events. A failure
// after the first page aborts the connection, so that a partial export
// never looks complete.
func (s *Server) exportInstances(c *gin.Context) {
	q, ferr := parseQuery(c, exportParams)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	f, ferr := instanceFilter(q)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	order, ferr := q.enum("order")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ctx := c.Request.Context()
	p := views.Page{Limit: s.cfg.MaxPageSize, Desc: order == "desc"}
	page, err := s.pageWithTimeout(ctx, f, p)
	if err != nil {
		s.failed(c, "instances", err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", "attachment; filename=instances.csv")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", ConsistencyTrailer)
	setConsistency(c, page.Seq)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	if err := w.Write(csvHeader()); err != nil {
		return // the client went away
	}
	rows := 0
	for {
		for i := range page.Instances {
			if err := w.Write(csvRecord(&page.Instances[i])); err != nil {
				return
			}
		}
		rows += len(page.Instances)
		w.Flush()
		if w.Error() != nil {
			return
		}
		c.Writer.Flush()
		last := page.Seq
		if page.Next == "" {
			h.Set(ConsistencyTrailer, strconv.FormatUint(last, 10))
			return
		}
		p.Cursor = page.Next
		if page, err = s.pageWithTimeout(ctx, f, p); err != nil {
			if ctx.Err() == nil {
				s.logger.Error("CSV export failed half-way; aborting the answer", "rows_sent", rows, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
}

func (s *Server) pageWithTimeout(ctx context.Context, f views.InstanceFilter, p views.Page) (views.InstancePage, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return s.views.ListInstances(ctx, f, p)
}

// csvColumn is one column of the export: a field of views.Instance, named
// by its JSON name, so the export follows the row type.
type csvColumn struct {
	name  string
	index int
}

var csvColumns = func() []csvColumn {
	t := reflect.TypeFor[views.Instance]()
	var cols []csvColumn
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		cols = append(cols, csvColumn{name: name, index: i})
	}
	return cols
}()

func csvHeader() []string {
	out := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		out[i] = c.name
	}
	return out
}

// csvRecord renders r: text as is (guarded against spreadsheet formulas,
// see CSVText), numbers in decimal, booleans true/false, times RFC 3339
// (UTC), an unknown time empty.
func csvRecord(r *views.Instance) []string {
	v := reflect.ValueOf(r).Elem()
	out := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		out[i] = csvValue(v.Field(c.index))
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

func csvValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		return v.Interface().(time.Time).UTC().Format(time.RFC3339Nano)
	}
	switch v.Kind() {
	case reflect.String:
		return CSVText(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	}
	b, _ := json.Marshal(v.Interface())
	return CSVText(string(b))
}

// CSVText is how the export writes a text value: a value a spreadsheet
// would take for a formula (starting with = + - @, a tab or a carriage
// return) gets a leading apostrophe, so opening the export cannot run
// what a buyer or a provisioner wrote into, say, a failure message.
func CSVText(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
