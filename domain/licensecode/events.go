package licensecode

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind is the aggregate kind of authorization codes in the event log; the
// aggregate id is the code (design.md §3: gallerist.licensecode.<code>).
const Kind = "licensecode"

// Event is a fact about an authorization code.
type Event interface {
	// EventType is the stable name stored in the log.
	EventType() string
}

// Event type names as stored in the log.
const (
	TypeRegistered       = "LicenseCodeRegistered"
	TypeRefreshed        = "LicenseCodeRefreshed"
	TypeFrozen           = "LicenseCodeFrozen"
	TypeUnfrozen         = "LicenseCodeUnfrozen"
	TypeReleased         = "LicenseCodeReleased"
	TypeActivated        = "LicenseCodeActivated"
	TypeActivationFailed = "LicenseCodeActivationFailed"
	TypeQueried          = "LicenseCodeQueried"
	TypeUsageReported    = "LicenseCodeUsageReported"
)

// SchemaVersion is the version every event type is written with today.
const SchemaVersion = 1

// Registered: the vendor's software handed the code over; KooGallery's
// calls for it are accepted from now on.
type Registered struct {
	Code      string `json:"license"`
	Reference string `json:"reference,omitempty"`
}

// Refreshed: refreshLicenseCode set the expiry (renewal, or a cancelled
// renewal period that shortens it).
type Refreshed struct {
	Scene       Scene     `json:"scene"`
	OrderID     string    `json:"orderId"`
	OrderLineID string    `json:"orderLineId,omitempty"`
	ProductID   string    `json:"productId,omitempty"`
	ExpireTime  time.Time `json:"expireTime"`
}

// Frozen: the resources bound to the code are unusable; data is kept.
type Frozen struct{}

// Unfrozen: the resources bound to the code are usable again.
type Unfrozen struct{}

// Released: the resources bound to the code are deleted. OrderID is the
// unsubscribe order when one caused it.
type Released struct {
	OrderID     string `json:"orderId,omitempty"`
	OrderLineID string `json:"orderLineId,omitempty"`
}

// Activated: KooGallery's activate API answered success.
type Activated struct {
	Answer     Answer    `json:"answer"`
	EffectTime time.Time `json:"effectTime,omitzero"`
	Info       *CodeInfo `json:"info,omitempty"`
}

// ActivationFailed: KooGallery's activate API answered an error.
type ActivationFailed struct {
	Answer Answer `json:"answer"`
}

// Queried: KooGallery's query (heartbeat) API answered; Info is set for a
// success.
type Queried struct {
	Answer Answer     `json:"answer"`
	Info   *QueryInfo `json:"info,omitempty"`
}

// UsageReported: KooGallery's usage-statistics API answered a report for
// this code.
type UsageReported struct {
	Answer  Answer       `json:"answer"`
	Entries []UsageEntry `json:"entries"`
}

// EventType implements Event.
func (Registered) EventType() string { return TypeRegistered }

// EventType implements Event.
func (Refreshed) EventType() string { return TypeRefreshed }

// EventType implements Event.
func (Frozen) EventType() string { return TypeFrozen }

// EventType implements Event.
func (Unfrozen) EventType() string { return TypeUnfrozen }

// EventType implements Event.
func (Released) EventType() string { return TypeReleased }

// EventType implements Event.
func (Activated) EventType() string { return TypeActivated }

// EventType implements Event.
func (ActivationFailed) EventType() string { return TypeActivationFailed }

// EventType implements Event.
func (Queried) EventType() string { return TypeQueried }

// EventType implements Event.
func (UsageReported) EventType() string { return TypeUsageReported }

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
	case TypeRegistered:
		e = &Registered{}
	case TypeRefreshed:
		e = &Refreshed{}
	case TypeFrozen:
		return Frozen{}, nil
	case TypeUnfrozen:
		return Unfrozen{}, nil
	case TypeReleased:
		e = &Released{}
	case TypeActivated:
		e = &Activated{}
	case TypeActivationFailed:
		e = &ActivationFailed{}
	case TypeQueried:
		e = &Queried{}
	case TypeUsageReported:
		e = &UsageReported{}
	default:
		return nil, fmt.Errorf("decode: unknown licensecode event type %q", typ)
	}
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
	}
	return deref(e), nil
}

func deref(e Event) Event {
	switch v := e.(type) {
	case *Registered:
		return *v
	case *Refreshed:
		return *v
	case *Released:
		return *v
	case *Activated:
		return *v
	case *ActivationFailed:
		return *v
	case *Queried:
		return *v
	case *UsageReported:
		return *v
	}
	return e
}
