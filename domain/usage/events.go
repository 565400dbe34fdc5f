package usage

import (
	"encoding/json"
	"fmt"
)

// Event is a fact about an instance's usage.
type Event interface {
	// EventType is the stable name stored in the log.
	EventType() string
}

// Event type names as stored in the log.
const (
	TypeRecorded = "UsageRecorded"
	TypePushed   = "UsagePushed"
	TypeRejected = "UsageRejected"
)

// SchemaVersion is the version every event type is written with today.
const SchemaVersion = 1

// Recorded: the vendor reported these records (new ones only; a re-report
// of a recorded metering_sn adds nothing). All belong to InstanceID.
type Recorded struct {
	InstanceID string   `json:"instanceId"`
	Records    []Record `json:"records"`
}

// Pushed: one push (BatchID) delivered these records. Accepted lists every
// metering_sn KooGallery took, Duplicates those of them it reported as
// already received (record codes 005/010), which count as delivered.
type Pushed struct {
	InstanceID string   `json:"instanceId"`
	BatchID    string   `json:"batchId"`
	Accepted   []string `json:"accepted"`
	Duplicates []string `json:"duplicates,omitempty"`
	// Host is the KooGallery host that answered.
	Host string `json:"host,omitempty"`
}

// Rejection is the record-level error of one record.
type Rejection struct {
	MeteringSN string `json:"meteringSn"`
	// Code is KooGallery's record code (001…013, outgoing.md §9.1) or the
	// push's overall code (MKT.…) when the whole push was refused.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Rejected: records KooGallery refused (BatchID is the push), or that
// Gallerist's last check before a push refused (Local, e.g. older than 21
// days by then). A rejected record is never pushed again.
type Rejected struct {
	InstanceID string      `json:"instanceId"`
	BatchID    string      `json:"batchId,omitempty"`
	Local      bool        `json:"local,omitempty"`
	Rejections []Rejection `json:"rejections"`
}

// EventType implements Event.
func (Recorded) EventType() string { return TypeRecorded }

// EventType implements Event.
func (Pushed) EventType() string { return TypePushed }

// EventType implements Event.
func (Rejected) EventType() string { return TypeRejected }

// Encode returns the stored form of e: its type, schema version and JSON data.
func Encode(e Event) (typ string, version int, data []byte, err error) {
	data, err = json.Marshal(e)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return e.EventType(), SchemaVersion, data, nil
}

// Decode reads a stored event; a version newer than this code knows, or an
// unknown type, is an error.
func Decode(typ string, version int, data []byte) (Event, error) {
	if version > SchemaVersion || version < 1 {
		return nil, fmt.Errorf("decode %s: unsupported schema version %d", typ, version)
	}
	var err error
	switch typ {
	case TypeRecorded:
		var e Recorded
		if err = json.Unmarshal(data, &e); err == nil {
			return e, nil
		}
	case TypePushed:
		var e Pushed
		if err = json.Unmarshal(data, &e); err == nil {
			return e, nil
		}
	case TypeRejected:
		var e Rejected
		if err = json.Unmarshal(data, &e); err == nil {
			return e, nil
		}
	default:
		return nil, fmt.Errorf("decode: unknown usage event type %q", typ)
	}
	return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
}
