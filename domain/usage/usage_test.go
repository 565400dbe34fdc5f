package usage

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)

func input() Input {
	return Input{InstanceID: "i-1", RecordKey: "meter-7/2026-11-27T09", RecordTime: "20261127T100500Z",
		BeginTime: "20261127T090000Z", EndTime: "20261127T100000Z", UsageValue: "99"}
}

func TestParseValid(t *testing.T) {
	r, err := Parse(input(), DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	want := Record{InstanceID: "i-1", RecordKey: "meter-7/2026-11-27T09", MeteringSN: MeteringSN("i-1", "meter-7/2026-11-27T09"),
		RecordTime: time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC), BeginTime: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
		EndTime: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), UsageValue: "99", Billing: BillingHourly}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if len(r.MeteringSN) != 32 || r.MeteringSN == MeteringSN("i-1", "meter-7/2026-11-27T10") || r.MeteringSN == MeteringSN("i-2", "meter-7/2026-11-27T09") {
		t.Fatalf("metering_sn %q is not a stable per-instance, per-key digest", r.MeteringSN)
	}
	// RFC 3339 with an offset means the same instant.
	in := input()
	in.BeginTime = "2026-11-27T17:00:00+08:00"
	r2, err := Parse(in, DefaultRules(), now)
	if err != nil || !r2.BeginTime.Equal(r.BeginTime) || r2.MeteringSN != r.MeteringSN {
		t.Fatalf("RFC 3339: %+v %v", r2, err)
	}
}

func TestCanonicalValue(t *testing.T) {
	for in, want := range map[string]string{"99": "99", "007.50": "7.5", "0.0001": "0.0001", "1.0000": "1", "12345678.1234": "12345678.1234",
		"0.00010": "0.0001", "99999999999999999999": "99999999999999999999"} {
		got, err := CanonicalValue(in)
		if err != nil || got != want {
			t.Errorf("CanonicalValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "0.0", "-1", "+1", "1e3", "1.", ".5", "1.23456", "NaN", " 1", "1,5", "0x10", "1.2.3", "999999999999999999999"} {
		if got, err := CanonicalValue(bad); err == nil || err.Field != FieldUsageValue {
			t.Errorf("CanonicalValue(%q) = %q, %v; want an error on usageValue", bad, got, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	lateHourly := input() // ended 10:00, deadline 12:00
	cases := []struct {
		name  string
		edit  func(*Input)
		now   time.Time
		rules func(*Rules)
		field string
		msg   string
	}{
		{name: "no instance", edit: func(in *Input) { in.InstanceID = "" }, field: FieldInstanceID, msg: "required"},
		{name: "long instance", edit: func(in *Input) { in.InstanceID = strings.Repeat("x", 65) }, field: FieldInstanceID, msg: "64"},
		{name: "no key", edit: func(in *Input) { in.RecordKey = "" }, field: FieldRecordKey, msg: "required"},
		{name: "control in key", edit: func(in *Input) { in.RecordKey = "a\nb" }, field: FieldRecordKey, msg: "control"},
		{name: "float value", edit: func(in *Input) { in.UsageValue = "1e2" }, field: FieldUsageValue, msg: "decimal"},
		{name: "zero value", edit: func(in *Input) { in.UsageValue = "0.000" }, field: FieldUsageValue, msg: "greater than 0"},
		{name: "5 decimals", edit: func(in *Input) { in.UsageValue = "1.00001" }, field: FieldUsageValue, msg: "4 decimals"},
		{name: "long pkg", edit: func(in *Input) { in.RelatePkgInstance = strings.Repeat("p", 65) }, field: FieldRelatePkgInstance, msg: "64"},
		{name: "bad time", edit: func(in *Input) { in.RecordTime = "2026-11-27 10:00" }, field: FieldRecordTime, msg: "yyyyMMddTHHmmssZ"},
		{name: "fraction", edit: func(in *Input) { in.BeginTime = "2026-11-27T09:00:00.5Z" }, field: FieldBeginTime, msg: "whole seconds"},
		{name: "end before begin", edit: func(in *Input) { in.EndTime = "20261127T090000Z" }, field: FieldEndTime, msg: "after beginTime"},
		{name: "future end", edit: func(in *Input) { in.BeginTime, in.EndTime = "20261127T103000Z", "20261127T113000Z" }, field: FieldEndTime, msg: "future"},
		{name: "future record time", edit: func(in *Input) { in.RecordTime = "20261127T120000Z" }, field: FieldRecordTime, msg: "future"},
		{name: "bad billing", edit: func(in *Input) { in.Billing = "weekly" }, field: FieldBilling, msg: "hourly or daily"},
		{name: "hourly over an hour", edit: func(in *Input) { in.Billing = "hourly"; in.BeginTime = "20261127T080000Z" }, field: FieldEndTime, msg: "at most one hour"},
		{name: "daily over a day", edit: func(in *Input) { in.BeginTime = "20261126T120000Z"; in.EndTime = "20261127T010000Z" }, field: FieldEndTime, msg: "within one day"},
		{name: "21 days", edit: func(in *Input) { in.BeginTime, in.EndTime = "20261105T000000Z", "20261105T010000Z" },
			rules: func(r *Rules) { r.AllowLate = true }, field: FieldBeginTime, msg: "MKT.9004"},
		{name: "hourly deadline", edit: func(*Input) {}, now: now.Add(90 * time.Minute).Add(time.Second), field: FieldEndTime, msg: "deadline of hourly usage"},
		{name: "daily deadline", edit: func(in *Input) {
			in.BeginTime, in.EndTime, in.RecordTime = "20261126T000000Z", "20261127T000000Z", "20261127T000500Z"
		},
			now: time.Date(2026, 11, 27, 1, 0, 1, 0, time.UTC), field: FieldEndTime, msg: "20261127T010000Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := lateHourly
			c.edit(&in)
			rules := DefaultRules()
			if c.rules != nil {
				c.rules(&rules)
			}
			at := now
			if !c.now.IsZero() {
				at = c.now
			}
			_, err := Parse(in, rules, at)
			if err == nil || err.Field != c.field || !strings.Contains(err.Msg, c.msg) {
				t.Fatalf("got %v, want an error on %s mentioning %q", err, c.field, c.msg)
			}
		})
	}
}

func TestDeadlinesBoundaries(t *testing.T) {
	in := input() // hourly, ended 10:00: due by 12:00
	if _, err := Parse(in, DefaultRules(), time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("at the hourly deadline: %v", err)
	}
	rules := DefaultRules()
	rules.AllowLate = true
	if _, err := Parse(in, rules, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("late allowed: %v", err)
	}
	// A daily aggregate of 26 Nov is due by 27 Nov 01:00, in the rules' location.
	day := Input{InstanceID: "i-1", RecordKey: "d-26", RecordTime: "20261126T160500Z", BeginTime: "20261125T160000Z",
		EndTime: "20261126T160000Z", UsageValue: "3.5"}
	shanghai := time.FixedZone("CST", 8*3600)
	rules = DefaultRules()
	rules.Location = shanghai
	r, err := Parse(day, rules, time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)) // 01:00 in Shanghai
	if err != nil || r.Billing != BillingDaily {
		t.Fatalf("daily in Shanghai at its deadline: %+v %v", r, err)
	}
	if _, err := Parse(day, rules, time.Date(2026, 11, 26, 17, 0, 1, 0, time.UTC)); err == nil {
		t.Fatal("daily in Shanghai after its deadline accepted")
	}
	// 21 days: exactly 21 days back is still accepted.
	old := Input{InstanceID: "i-1", RecordKey: "old", RecordTime: "20261106T103000Z", BeginTime: "20261106T103000Z",
		EndTime: "20261106T110000Z", UsageValue: "1"}
	rules = DefaultRules()
	rules.AllowLate = true
	if _, err := Parse(old, rules, now); err != nil {
		t.Fatalf("exactly 21 days: %v", err)
	}
	if _, err := Parse(old, rules, now.Add(time.Second)); err == nil || err.Field != FieldBeginTime {
		t.Fatalf("21 days and a second: %v", err)
	}
}

func record(t *testing.T, key, value string) Record {
	t.Helper()
	in := input()
	in.RecordKey, in.UsageValue = key, value
	r, err := Parse(in, DefaultRules(), now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecideReportIsIdempotent(t *testing.T) {
	a, b := record(t, "a", "1"), record(t, "b", "2.5")
	evs, err := Decide(State{}, Report{InstanceID: "i-1", Records: []Record{a, b, a}})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %v", evs, err)
	}
	rec := evs[0].(Recorded)
	if len(rec.Records) != 2 {
		t.Fatalf("recorded %d records, want 2 (a once)", len(rec.Records))
	}
	s := Fold(rec)
	if s.Len() != 2 || s.PendingLen() != 2 || s.InstanceID != "i-1" {
		t.Fatalf("state %+v", s)
	}
	// The same report again: nothing.
	if evs, err := Decide(s, Report{InstanceID: "i-1", Records: []Record{a, b}}); err != nil || len(evs) != 0 {
		t.Fatalf("re-report: %v %v", evs, err)
	}
	if Classify(s, a, false) != OutcomeDuplicate || Classify(s, a, true) != OutcomeRecorded {
		t.Fatal("classify duplicate/recorded")
	}
	a2 := record(t, "a", "1.5") // same key, other value
	if a2.MeteringSN != a.MeteringSN {
		t.Fatal("same key, other metering_sn")
	}
	if evs, _ := Decide(s, Report{InstanceID: "i-1", Records: []Record{a2}}); len(evs) != 0 || Classify(s, a2, false) != OutcomeConflict {
		t.Fatalf("conflicting re-report: %v", evs)
	}
	// Malformed commands.
	other := a
	other.InstanceID = "i-2"
	wrongSN := a
	wrongSN.MeteringSN = "x"
	for name, c := range map[string]Command{
		"no instance": Report{Records: []Record{a}}, "other instance": Report{InstanceID: "i-1", Records: []Record{other}},
		"wrong sn": Report{InstanceID: "i-1", Records: []Record{wrongSN}}, "nil": nil,
		"outcome without batch": RecordOutcome{Accepted: []string{a.MeteringSN}},
	} {
		if _, err := Decide(s, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestOutcomes(t *testing.T) {
	a, b, c := record(t, "a", "1"), record(t, "b", "2"), record(t, "c", "3")
	s := Fold(Recorded{InstanceID: "i-1", Records: []Record{a, b, c}})
	if got := s.Pending(2); len(got) != 2 || got[0].RecordKey != "a" || got[1].RecordKey != "b" {
		t.Fatalf("pending(2) = %+v", got)
	}
	evs, err := Decide(s, RecordOutcome{BatchID: "b1", Accepted: []string{a.MeteringSN, b.MeteringSN}, Duplicates: []string{b.MeteringSN},
		Rejected: []Rejection{{MeteringSN: c.MeteringSN, Code: "003", Message: "bad usage value"}}})
	if err != nil || len(evs) != 2 {
		t.Fatalf("%v %v", evs, err)
	}
	s2 := Fold(Recorded{InstanceID: "i-1", Records: []Record{a, b, c}}, evs[0], evs[1])
	if s2.PendingLen() != 0 || s2.Pending(10) != nil {
		t.Fatalf("pending after outcome: %d", s2.PendingLen())
	}
	ea, _ := s2.Entry(a.MeteringSN)
	eb, _ := s2.Entry(b.MeteringSN)
	ec, _ := s2.Entry(c.MeteringSN)
	if ea.Status != StatusPushed || ea.BatchID != "b1" || ea.Duplicate || !eb.Duplicate || ec.Status != StatusRejected || ec.Code != "003" {
		t.Fatalf("entries %+v %+v %+v", ea, eb, ec)
	}
	// The old state is untouched (copy on write).
	if e, _ := s.Entry(a.MeteringSN); e.Status != StatusPending || s.PendingLen() != 3 {
		t.Fatal("Evolve changed an earlier state")
	}
	// The same outcome again: nothing.
	if evs, err := Decide(s2, RecordOutcome{BatchID: "b2", Accepted: []string{a.MeteringSN}}); err != nil || len(evs) != 0 {
		t.Fatalf("repeat outcome: %v %v", evs, err)
	}
	if got := s2.Entries(); len(got) != 3 || got[0].Record.RecordKey != "a" || got[2].Record.RecordKey != "c" {
		t.Fatalf("entries order %+v", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	a := record(t, "a", "0.25")
	for _, e := range []Event{
		Recorded{InstanceID: "i-1", Records: []Record{a}},
		Pushed{InstanceID: "i-1", BatchID: "b", Accepted: []string{"x"}, Duplicates: []string{"x"}, Host: "h"},
		Rejected{InstanceID: "i-1", Local: true, Rejections: []Rejection{{MeteringSN: "x", Code: "MKT.9004", Message: "old"}}},
	} {
		typ, v, data, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(typ, v, data)
		if err != nil || !reflect.DeepEqual(back, e) {
			t.Fatalf("%s: %+v %v", typ, back, err)
		}
	}
	if _, err := Decode("Nope", 1, []byte(`{}`)); err == nil {
		t.Fatal("unknown type decoded")
	}
	if _, err := Decode(TypePushed, 2, []byte(`{}`)); err == nil {
		t.Fatal("future version decoded")
	}
}
