package license

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind is the aggregate kind of licenses in the event log; the aggregate id
// is the instanceId (design.md §3: gallerist.license.<instanceId>).
const Kind = "license"

// Event is a fact about a license.
type Event interface {
	// EventType is the stable name stored in the log.
	EventType() string
}

// Event type names as stored in the log.
const (
	TypeIssued    = "LicenseIssued"
	TypeRefreshed = "LicenseRefreshed"
	TypeExpired   = "LicenseExpired"
	TypeReleased  = "LicenseReleased"
)

// SchemaVersion is the version every event type is written with today.
const SchemaVersion = 1

// Issued: getLicense was answered with Text for the order; the license is
// usable.
type Issued struct {
	InstanceID string   `json:"instanceId"`
	OrderID    string   `json:"orderId"`
	BusinessID string   `json:"businessId,omitempty"`
	Customer   Customer `json:"customer"`
	Purchase   Purchase `json:"purchase"`
	Text       string   `json:"text"`
}

// Refreshed: a renewal order moved the expiry; a frozen license is usable
// again.
type Refreshed struct {
	OrderID      string    `json:"orderId"`
	ProductID    string    `json:"productId,omitempty"`
	ExpireTime   time.Time `json:"expireTime"`
	PeriodType   string    `json:"periodType,omitempty"`
	PeriodNumber int       `json:"periodNumber,omitempty"`
}

// Expired: the purchase expired; the license is frozen, its data kept.
type Expired struct {
	OrderID string `json:"orderId,omitempty"`
}

// Released: the license is deleted at the vendor.
type Released struct {
	OrderID string `json:"orderId,omitempty"`
}

// EventType implements Event.
func (Issued) EventType() string { return TypeIssued }

// EventType implements Event.
func (Refreshed) EventType() string { return TypeRefreshed }

// EventType implements Event.
func (Expired) EventType() string { return TypeExpired }

// EventType implements Event.
func (Released) EventType() string { return TypeReleased }

// Encode returns the stored form of e: its type, schema version and JSON data.
func Encode(e Event) (typ string, version int, data []byte, err error) {
	data, err = json.Marshal(e)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return e.EventType(), SchemaVersion, data, nil
}

// Decode reads a stored event. Older schema versions are upcast here; a
// version newer than this code knows is an error, never a silent guess.
func Decode(typ string, version int, data []byte) (Event, error) {
	if version > SchemaVersion || version < 1 {
		return nil, fmt.Errorf("decode %s: unsupported schema version %d", typ, version)
	}
	var e Event
	switch typ {
	case TypeIssued:
		e = &Issued{}
	case TypeRefreshed:
		e = &Refreshed{}
	case TypeExpired:
		e = &Expired{}
	case TypeReleased:
		e = &Released{}
	default:
		return nil, fmt.Errorf("decode: unknown license event type %q", typ)
	}
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
	}
	return deref(e), nil
}

func deref(e Event) Event {
	switch v := e.(type) {
	case *Issued:
		return *v
	case *Refreshed:
		return *v
	case *Expired:
		return *v
	case *Released:
		return *v
	}
	return e
}
