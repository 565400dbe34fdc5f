package license

import (
	"encoding/json"
	"fmt"
)

// The order index maps a getLicense order to the license issued for it. It
// is its own tiny stream per order (kind "licenseorder", key orderId) whose
// first event wins: appending it with expected sequence 0 is what makes
// getLicense idempotent across replicas and keeps the instanceId the
// businessId of the first request, even when the license text is produced
// after that request was answered (license.md §2.1: 000005, then the next
// retry returns the same License).
const (
	IndexKind = "licenseorder"
	TypeBound = "LicenseOrderBound"
)

// Bound: this order's license is InstanceID.
type Bound struct {
	InstanceID string `json:"instanceId"`
}

// EventType implements Event.
func (Bound) EventType() string { return TypeBound }

// DecodeBound reads a stored Bound event.
func DecodeBound(typ string, version int, data []byte) (Bound, error) {
	var b Bound
	if typ != TypeBound || version != SchemaVersion {
		return b, fmt.Errorf("decode license order index: unexpected %s v%d", typ, version)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("decode license order index: %w", err)
	}
	if b.InstanceID == "" {
		return b, fmt.Errorf("decode license order index: empty instanceId")
	}
	return b, nil
}
