package instance

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind is the aggregate kind of instances in the event log.
const Kind = "instance"

// Event is a fact about an instance.
type Event interface {
	// EventType is the stable name stored in the log.
	EventType() string
}

// Event type names as stored in the log.
const (
	TypeCreated            = "InstanceCreated"
	TypeProvisioned        = "InstanceProvisioned"
	TypeProvisioningFailed = "InstanceProvisioningFailed"
	TypeRefreshed          = "InstanceRefreshed"
	TypeFrozen             = "InstanceFrozen"
	TypeUnfrozen           = "InstanceUnfrozen"
	TypeReleased           = "InstanceReleased"
	TypeUpgraded           = "InstanceUpgraded"
)

// SchemaVersion is the version every event type is written with today.
const SchemaVersion = 1

// Created: KooGallery's newInstance was accepted; provisioning starts.
type Created struct {
	InstanceID  string `json:"instanceId"`
	OrderID     string `json:"orderId"`
	OrderLineID string `json:"orderLineId"`
	BusinessID  string `json:"businessId"`
	// V1 is set for a SaaS V1 instance: the order and buyer details.
	V1 *V1Order `json:"v1,omitempty"`
}

// Provisioned: the vendor side is ready; AppInfo is what the buyer gets.
type Provisioned struct {
	AppInfo AppInfo `json:"appInfo"`
}

// ProvisioningFailed: the vendor side refused or could not create the instance.
type ProvisioningFailed struct {
	Failure Failure `json:"failure"`
}

// Refreshed: the expiry changed (renewal, trial to formal, cancelled renewal
// period, renewal with change).
type Refreshed struct {
	Scene       Scene     `json:"scene"`
	OrderID     string    `json:"orderId"`
	OrderLineID string    `json:"orderLineId"`
	ProductID   string    `json:"productId,omitempty"`
	ExpireTime  time.Time `json:"expireTime"`
	// SaaS V1 details of the renewal order.
	PeriodType   string `json:"periodType,omitempty"`
	PeriodNumber int    `json:"periodNumber,omitempty"`
	OrderAmount  string `json:"orderAmount,omitempty"`
}

// Frozen: the instance is unusable; its data is kept. Reason is empty for
// a status change, FrozenExpired for a SaaS V1 expiry.
type Frozen struct {
	Reason string `json:"reason,omitempty"`
}

// Unfrozen: the instance is usable again.
type Unfrozen struct{}

// Released: the instance is deleted at the vendor. OrderID is set when an
// unsubscription caused it.
type Released struct {
	OrderID     string `json:"orderId,omitempty"`
	OrderLineID string `json:"orderLineId,omitempty"`
	OrderAmount string `json:"orderAmount,omitempty"`
}

// Upgraded: an upgrade or expansion order was applied. V1 holds what a
// SaaS V1 upgrade changed.
type Upgraded struct {
	OrderID     string     `json:"orderId"`
	OrderLineID string     `json:"orderLineId"`
	V1          *V1Upgrade `json:"v1,omitempty"`
}

// EventType implements Event.
func (Created) EventType() string { return TypeCreated }

// EventType implements Event.
func (Provisioned) EventType() string { return TypeProvisioned }

// EventType implements Event.
func (ProvisioningFailed) EventType() string { return TypeProvisioningFailed }

// EventType implements Event.
func (Refreshed) EventType() string { return TypeRefreshed }

// EventType implements Event.
func (Frozen) EventType() string { return TypeFrozen }

// EventType implements Event.
func (Unfrozen) EventType() string { return TypeUnfrozen }

// EventType implements Event.
func (Released) EventType() string { return TypeReleased }

// EventType implements Event.
func (Upgraded) EventType() string { return TypeUpgraded }

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
	case TypeCreated:
		e = &Created{}
	case TypeProvisioned:
		e = &Provisioned{}
	case TypeProvisioningFailed:
		e = &ProvisioningFailed{}
	case TypeRefreshed:
		e = &Refreshed{}
	case TypeFrozen:
		e = &Frozen{}
	case TypeUnfrozen:
		return Unfrozen{}, nil
	case TypeReleased:
		e = &Released{}
	case TypeUpgraded:
		e = &Upgraded{}
	case TypeOrderQueried:
		e = &OrderQueried{}
	default:
		var ok bool
		if e, ok = decodeLicense(typ); !ok {
			return nil, fmt.Errorf("decode: unknown instance event type %q", typ)
		}
	}
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, version, err)
	}
	return deref(e), nil
}

func deref(e Event) Event {
	switch v := e.(type) {
	case *Created:
		return *v
	case *Provisioned:
		return *v
	case *ProvisioningFailed:
		return *v
	case *Refreshed:
		return *v
	case *Released:
		return *v
	case *Upgraded:
		return *v
	case *Frozen:
		return *v
	case *OrderQueried:
		return *v
	}
	return derefLicense(e)
}
