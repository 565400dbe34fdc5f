package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/usage"
)

// Usage records and reads the usage the vendor reports for pay-per-use
// and on-demand-package instances (package usagepush's Service implements
// it). Errors other than a context's are answered 500.
type Usage interface {
	// Parse validates one reported record (at the implementation's now,
	// by its rules); the error names the field.
	Parse(in usage.Input) (usage.Record, *usage.FieldError)
	// Report appends the records idempotently (a metering_sn recorded
	// before adds nothing) and says what became of each, in order.
	Report(ctx context.Context, recs []usage.Record, cause event.Causation) ([]usage.Result, error)
	// Usage returns an instance's usage, fresh from the log, and the
	// stream sequence it reflects (0 when nothing was recorded).
	Usage(ctx context.Context, instanceID string) (usage.State, uint64, error)
}

// Bounds of POST /v1/usage.
const (
	// maxUsageReport is the most records of one report (the usage push's
	// own limit per push).
	maxUsageReport = usage.MaxBatch
	// maxUsageBody bounds the body of a report.
	maxUsageBody = 2 << 20
	// usageTimeout bounds a report (one append per instance).
	usageTimeout = time.Minute
)

// UsageReport is the body of POST /v1/usage.
type UsageReport struct {
	Records []UsageInput `json:"records" doc:"The records, 1..1000; each is validated (a 400 names records[i].field) before any is recorded."`
}

// UsageInput is one reported record.
type UsageInput struct {
	InstanceID string `json:"instanceId" doc:"The pay-per-use (or package) instance, as newInstance returned it; at most 64 bytes."`
	RecordKey  string `json:"recordKey" doc:"Your own key of the record (at most 128 bytes), e.g. meter id and hour: the record's metering_sn is derived from instance and key, so reporting the same key again is idempotent."`
	RecordTime string `json:"recordTime" doc:"When the record was produced: yyyyMMddTHHmmssZ (UTC, e.g. 20220809T091000Z) or RFC 3339, whole seconds; not in the future."`
	BeginTime  string `json:"beginTime" doc:"Start of the usage interval (same formats); at most 21 days ago (KooGallery refuses older records, MKT.9004)."`
	EndTime    string `json:"endTime" doc:"End of the usage interval (same formats), after beginTime and not in the future. Hourly usage is due 2 hours after endTime, a daily aggregate by 01:00 of the next day (UTC): later reports are refused."`
	// UsageValue is a JSON string or number, kept as decimal text.
	UsageValue        json.RawMessage `json:"usageValue"`
	RelatePkgInstance string          `json:"relatePkgInstance,omitempty" doc:"The package instance drawn down; required by KooGallery for use-until-exhausted packages. At most 64 bytes."`
	Billing           string          `json:"billing,omitempty" doc:"hourly (an interval of at most one hour) or daily (within one day); omitted: inferred from the interval's length."`
}

// UsageReportResult is the answer of POST /v1/usage.
type UsageReportResult struct {
	Records    []UsageRecordResult `json:"records" doc:"One per reported record, in order."`
	Recorded   int                 `json:"recorded" doc:"Records recorded now (to be pushed)."`
	Duplicates int                 `json:"duplicates" doc:"Records reported before with the same content: nothing changed."`
	Conflicts  int                 `json:"conflicts" doc:"Records whose recordKey was reported before with other content: the first report stands."`
}

// UsageRecordResult is what a report did with one record.
type UsageRecordResult struct {
	Index      int    `json:"index" doc:"The record's index in the report."`
	InstanceID string `json:"instanceId" doc:"The instance."`
	RecordKey  string `json:"recordKey" doc:"Your key of the record."`
	MeteringSN string `json:"meteringSn" doc:"The record's metering_sn, stable for the instance and key."`
	Outcome    string `json:"outcome" doc:"recorded (new), duplicate (reported before, same content) or conflict (reported before with other content; not recorded)."`
	Status     string `json:"status" doc:"The delivery status of the record under this metering_sn: pending, pushed or rejected."`
}

// UsageList is the answer of GET /v1/usage.
type UsageList struct {
	InstanceID string       `json:"instanceId" doc:"The instance."`
	Records    []UsageEntry `json:"records" doc:"The instance's records (those with status, if given), in the order recorded."`
	Total      int          `json:"total" doc:"Every record of the instance."`
	Pending    int          `json:"pending" doc:"Records not delivered yet."`
	Truncated  bool         `json:"truncated" doc:"More records match than limit allows."`
	// ConsistentTo is the sequence of the usage stream's last event read.
	ConsistentTo uint64 `json:"consistentTo" doc:"The list reflects the instance's usage events up to this stream sequence (0: none recorded)."`
}

// UsageEntry is one record and its delivery.
type UsageEntry struct {
	MeteringSN        string    `json:"meteringSn" doc:"The metering_sn pushed to KooGallery."`
	RecordKey         string    `json:"recordKey" doc:"Your key of the record."`
	RecordTime        time.Time `json:"recordTime" doc:"When the record was produced (UTC)."`
	BeginTime         time.Time `json:"beginTime" doc:"Start of the usage interval (UTC)."`
	EndTime           time.Time `json:"endTime" doc:"End of the usage interval (UTC)."`
	UsageValue        string    `json:"usageValue" doc:"The usage, as decimal text."`
	RelatePkgInstance string    `json:"relatePkgInstance,omitempty" doc:"The package instance drawn down."`
	Billing           string    `json:"billing" doc:"hourly or daily."`
	Status            string    `json:"status" doc:"pending (not delivered yet; retried with the same metering_sn), pushed or rejected."`
	BatchID           string    `json:"batchId,omitempty" doc:"The push that delivered or refused the record."`
	Duplicate         bool      `json:"duplicate,omitempty" doc:"KooGallery reported the record as already received (005/010): delivered."`
	Code              string    `json:"code,omitempty" doc:"For a rejected record: KooGallery's record code (001…013) or the push's code (MKT.…)."`
	Message           string    `json:"message,omitempty" doc:"For a rejected record: the error message."`
	Local             bool      `json:"local,omitempty" doc:"The rejection is Gallerist's own check before a push (e.g. older than 21 days by then)."`
}

var usageStatuses = []string{string(usage.StatusPending), string(usage.StatusPushed), string(usage.StatusRejected)}

// Bounds of the usage listing.
const (
	defaultUsageLimit = 1000
	maxUsageLimit     = 10000
)

// usageParams are the parameters of GET /v1/usage.
var usageParams = []param{
	{name: "instanceId", in: "query", kind: kindText, required: true, desc: "The instance whose usage to list."},
	{name: "status", in: "query", kind: kindEnum, enum: usageStatuses, desc: "Only records in this delivery status."},
	{name: "limit", in: "query", kind: kindInt, min: 1, max: maxUsageLimit, def: strconv.Itoa(defaultUsageLimit),
		desc: "At most this many (in the order recorded); truncated tells whether there are more."},
}

func (s *Server) listUsage(c *gin.Context) {
	q, ferr := parseQuery(c, usageParams)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	inst, ferr := q.text("instanceId")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	status, ferr := q.enum("status")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	limit, ferr := q.integer("limit")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if s.cfg.Usage == nil {
		writeError(c, http.StatusServiceUnavailable, "usage is not available on this server", "")
		return
	}
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	st, seq, err := s.cfg.Usage.Usage(ctx, inst)
	if err != nil {
		s.failed(c, "usage", err)
		return
	}
	out := UsageList{InstanceID: inst, Records: []UsageEntry{}, Total: st.Len(), Pending: st.PendingLen(), ConsistentTo: seq}
	for _, e := range st.Entries() {
		if status != "" && string(e.Status) != status {
			continue
		}
		if len(out.Records) == limit {
			out.Truncated = true
			break
		}
		r := e.Record
		out.Records = append(out.Records, UsageEntry{
			MeteringSN: r.MeteringSN, RecordKey: r.RecordKey, RecordTime: r.RecordTime, BeginTime: r.BeginTime, EndTime: r.EndTime,
			UsageValue: r.UsageValue, RelatePkgInstance: r.RelatePkgInstance, Billing: string(r.Billing),
			Status: string(e.Status), BatchID: e.BatchID, Duplicate: e.Duplicate, Code: e.Code, Message: e.Message, Local: e.Local,
		})
	}
	setConsistency(c, seq)
	writeJSON(c, http.StatusOK, out)
}

func (s *Server) reportUsage(c *gin.Context) {
	if _, ferr := parseQuery(c, nil); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	ins, ferr := readUsageReport(c.Request)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if s.cfg.Usage == nil {
		writeError(c, http.StatusServiceUnavailable, "usage is not available on this server", "")
		return
	}
	recs := make([]usage.Record, len(ins))
	for i, in := range ins {
		r, err := s.cfg.Usage.Parse(in)
		if err != nil {
			writeFieldError(c, badField(fmt.Sprintf("records[%d].%s", i, err.Field), err.Msg))
			return
		}
		recs[i] = r
	}
	ctx, cancel := withTimeout(c, usageTimeout)
	defer cancel()
	token, _ := c.Get(tokenKey)
	res, err := s.cfg.Usage.Report(ctx, recs, event.Causation{Actor: fmt.Sprintf("api:token%v", token)})
	if err != nil {
		s.failed(c, "usage", err)
		return
	}
	out := UsageReportResult{Records: make([]UsageRecordResult, len(res))}
	for i, r := range res {
		out.Records[i] = UsageRecordResult{Index: i, InstanceID: r.InstanceID, RecordKey: recs[i].RecordKey, MeteringSN: r.MeteringSN,
			Outcome: string(r.Outcome), Status: string(r.Status)}
		switch r.Outcome {
		case usage.OutcomeRecorded:
			out.Recorded++
		case usage.OutcomeDuplicate:
			out.Duplicates++
		default:
			out.Conflicts++
		}
	}
	s.logger.Info("usage reported", "records", len(recs), "recorded", out.Recorded, "duplicates", out.Duplicates,
		"conflicts", out.Conflicts, "token", token)
	writeJSON(c, http.StatusOK, out)
}

// readUsageReport reads a report strictly: one JSON object with the member
// records, an array of 1..maxUsageReport objects whose members are those
// of UsageInput, strings (usageValue also a number, kept as written).
// Errors name records[i].member.
func readUsageReport(r *http.Request) ([]usage.Input, *fieldError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUsageBody+1))
	if err != nil {
		return nil, badField("", "the body could not be read")
	}
	if len(body) > maxUsageBody {
		return nil, badField("", fmt.Sprintf("the body exceeds %d bytes", maxUsageBody))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil || top == nil {
		return nil, badField("", `the body must be a JSON object: {"records": [{…}, …]}`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("", "the body must be one JSON object")
	}
	for name := range top {
		if name != "records" {
			return nil, badField(truncate(name, 64), "unknown field")
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["records"], &raws); err != nil || raws == nil {
		return nil, badField("records", "must be an array of records")
	}
	switch {
	case len(raws) == 0:
		return nil, badField("records", "must not be empty")
	case len(raws) > maxUsageReport:
		return nil, badField("records", fmt.Sprintf("has %d records, at most %d per report", len(raws), maxUsageReport))
	}
	out := make([]usage.Input, len(raws))
	for i, raw := range raws {
		at := func(name string) string { return fmt.Sprintf("records[%d]%s", i, name) }
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil || members == nil {
			return nil, badField(at(""), "must be a JSON object")
		}
		in := &out[i]
		fields := map[string]*string{
			usage.FieldInstanceID: &in.InstanceID, usage.FieldRecordKey: &in.RecordKey, usage.FieldRecordTime: &in.RecordTime,
			usage.FieldBeginTime: &in.BeginTime, usage.FieldEndTime: &in.EndTime, usage.FieldRelatePkgInstance: &in.RelatePkgInstance,
			usage.FieldBilling: &in.Billing,
		}
		names := make([]string, 0, len(members))
		for name := range members {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			v := bytes.TrimSpace(members[name])
			if name == usage.FieldUsageValue {
				if len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9') {
					var n json.Number
					if err := json.Unmarshal(v, &n); err != nil {
						return nil, badField(at("."+name), "must be a decimal string or number")
					}
					in.UsageValue = n.String()
					continue
				}
				if err := json.Unmarshal(v, &in.UsageValue); err != nil || string(v) == "null" {
					return nil, badField(at("."+name), "must be a decimal string or number")
				}
				continue
			}
			dst, ok := fields[name]
			if !ok {
				return nil, badField(at("."+truncate(name, 64)), "unknown field")
			}
			if err := json.Unmarshal(v, dst); err != nil || string(v) == "null" {
				return nil, badField(at("."+name), "must be a string")
			}
		}
	}
	return out, nil
}

// usagePathDoc documents /v1/usage.
func usagePathDoc(g *schemaGen, jsonBody func(reflect.Type, string) obj, common func(obj) obj) obj {
	return obj{
		"get": obj{
			"operationId": "listUsage", "summary": "An instance's usage records and their delivery", "tags": []string{"usage"},
			"description": "The usage records reported for one instance, read from the event log, with the push status of each: " +
				"pending (retried with the same metering_sn until KooGallery answers), pushed, or rejected with KooGallery's record-level code.",
			"parameters": paramDocs(usageParams),
			"responses":  common(obj{"200": jsonBody(reflect.TypeFor[UsageList](), "The records.")}),
		},
		"post": obj{
			"operationId": "reportUsage", "summary": "Report usage of pay-per-use instances", "tags": []string{"usage"},
			"description": "Records usage for KooGallery's usage push: every record is validated first (the answer 400 names records[i].field, " +
				"and nothing is recorded), then each is recorded under its metering_sn, derived from instanceId and recordKey, so a " +
				"re-report is idempotent. Records are pushed to KooGallery in the background, in batches of at most 1000; GET /v1/usage shows the outcome.",
			"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[UsageReport]())}}},
			"responses": common(obj{"200": obj{"description": "What became of each record.",
				"content": obj{"application/json": obj{"schema": g.ref(reflect.TypeFor[UsageReportResult]())}}}}),
		},
	}
}
