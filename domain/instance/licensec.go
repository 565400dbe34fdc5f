package instance

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// License C (online activation, license.md §4): a getLicenseAsync is an
// application for a License on an existing instance. It is recorded on the
// instance (InstanceLicenseRequested), keyed on KooGallery's eventId; the
// license-delivery effect then records the License it generated
// (InstanceLicenseIssued) and the outcome of its upload to KooGallery
// (InstanceLicenseDelivered or InstanceLicenseDeliveryFailed).

// Event type names of License C applications.
const (
	TypeLicenseRequested      = "InstanceLicenseRequested"
	TypeLicenseIssued         = "InstanceLicenseIssued"
	TypeLicenseDelivered      = "InstanceLicenseDelivered"
	TypeLicenseDeliveryFailed = "InstanceLicenseDeliveryFailed"
	TypeLicenseResent         = "InstanceLicenseResent"
)

// License C refusals (codes-and-rules.md §2.6); the ingress maps them to
// 000901 and 000902.
var (
	// ErrLicenseOutsideValidity: the application does not fall within the
	// validity of the instance's current order (or the instance is frozen).
	ErrLicenseOutsideValidity = errors.New("the license application is outside the validity period of the current order")
	// ErrLicenseExpiryRequired: a period-billed product's application
	// carries no expireTime.
	ErrLicenseExpiryRequired = errors.New("a period-billed license needs an expireTime")
	// ErrLicenseConflict: the eventId was already applied for with another
	// device fingerprint (one eventId is one upload at KooGallery).
	ErrLicenseConflict = fmt.Errorf("%w: eventId was already applied for with another deviceFingerprint", ErrInvalid)
)

// LicenseApplication is one getLicenseAsync application and what became of
// it.
type LicenseApplication struct {
	EventID     string `json:"eventId"`
	Fingerprint string `json:"deviceFingerprint,omitempty"`
	// EffectiveTime and ExpireTime are the requested validity; ExpireTime
	// is zero when the application carried none.
	EffectiveTime time.Time `json:"effectiveTime"`
	ExpireTime    time.Time `json:"expireTime,omitzero"`
	// LicenseID and Text are the License issued for the application (empty
	// until the effect issued it); the first one recorded is the one every
	// upload sends.
	LicenseID string `json:"licenseId,omitempty"`
	Text      string `json:"text,omitempty"`
	// Delivered: KooGallery accepted the upload (as DeliveryType, with
	// SHA256 for a file).
	Delivered    bool   `json:"delivered,omitempty"`
	DeliveryType string `json:"deliveryType,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	// Failure is the last permanent upload refusal (nil once delivered).
	Failure *Failure `json:"failure,omitempty"`
	// Resends counts KooGallery's re-sent applications after a delivery or
	// a refusal, each of which uploads the same License again.
	Resends int `json:"resends,omitempty"`
	// DeliveredOnce: an upload of the License was accepted at least once
	// (it stays set while a re-send uploads it again).
	DeliveredOnce bool `json:"deliveredOnce,omitempty"`
}

// Issued reports whether a License was recorded for the application.
func (a LicenseApplication) Issued() bool { return a.Text != "" }

// LicenseApplication returns the application with the given eventId.
func (s State) LicenseApplication(eventID string) (LicenseApplication, bool) {
	a, ok := s.Licenses[eventID]
	return a, ok
}

// PeriodProduct reports whether Query Order said the instance's order is
// billed by period (chargingMode PERIOD); false when it is not known.
func (s State) PeriodProduct() bool {
	return s.Order != nil && s.Order.ChargingMode == "PERIOD"
}

// ValidUntil is the end of the current order's validity: the expiry of the
// last renewal, else the expiry Query Order reported; zero when unknown.
func (s State) ValidUntil() time.Time {
	if !s.ExpireTime.IsZero() {
		return s.ExpireTime
	}
	if s.Order != nil {
		return s.Order.ExpireTime
	}
	return time.Time{}
}

// LicenseRequested: KooGallery applied for a License (getLicenseAsync).
type LicenseRequested struct {
	EventID       string    `json:"eventId"`
	Fingerprint   string    `json:"deviceFingerprint,omitempty"`
	EffectiveTime time.Time `json:"effectiveTime"`
	ExpireTime    time.Time `json:"expireTime,omitzero"`
}

// LicenseIssued: the License of an application was generated.
type LicenseIssued struct {
	EventID   string `json:"eventId"`
	LicenseID string `json:"licenseId"`
	Text      string `json:"text"`
}

// LicenseDelivered: KooGallery accepted the upload of the License.
type LicenseDelivered struct {
	EventID string `json:"eventId"`
	// Type is the upload type: CHARACTERS or FILE.
	Type   string `json:"type"`
	SHA256 string `json:"sha256,omitempty"`
}

// LicenseDeliveryFailed: KooGallery refused the upload for good (the
// effect parks it; an operator's re-drive may still deliver it).
type LicenseDeliveryFailed struct {
	EventID string  `json:"eventId"`
	Failure Failure `json:"failure"`
}

// LicenseResent: KooGallery re-sent an application whose License was
// delivered or refused; the same License is uploaded again (license.md
// §4.6, point 5).
type LicenseResent struct {
	EventID string `json:"eventId"`
}

// EventType implements Event.
func (LicenseRequested) EventType() string { return TypeLicenseRequested }

// EventType implements Event.
func (LicenseResent) EventType() string { return TypeLicenseResent }

// EventType implements Event.
func (LicenseIssued) EventType() string { return TypeLicenseIssued }

// EventType implements Event.
func (LicenseDelivered) EventType() string { return TypeLicenseDelivered }

// EventType implements Event.
func (LicenseDeliveryFailed) EventType() string { return TypeLicenseDeliveryFailed }

// RequestLicense is getLicenseAsync: idempotent on EventID (a repeat with
// the same fingerprint decides nothing).
type RequestLicense struct {
	EventID       string
	Fingerprint   string
	EffectiveTime time.Time
	ExpireTime    time.Time
}

// RecordLicenseIssued records the License generated for an application;
// the first one recorded wins.
type RecordLicenseIssued struct {
	EventID   string
	LicenseID string
	Text      string
}

// RecordLicenseDelivered records KooGallery's acceptance of the upload.
type RecordLicenseDelivered struct {
	EventID string
	Type    string
	SHA256  string
}

// RecordLicenseDeliveryFailed records a permanent refusal of the upload.
type RecordLicenseDeliveryFailed struct {
	EventID string
	Failure Failure
}

func (RequestLicense) commandName() string              { return "requestLicense" }
func (RecordLicenseIssued) commandName() string         { return "recordLicenseIssued" }
func (RecordLicenseDelivered) commandName() string      { return "recordLicenseDelivered" }
func (RecordLicenseDeliveryFailed) commandName() string { return "recordLicenseDeliveryFailed" }

// decideLicense decides the License C commands; handled is false for any
// other command.
func decideLicense(s State, c Command) (events []Event, handled bool, err error) {
	switch c := c.(type) {
	case RequestLicense:
		events, err = decideRequestLicense(s, c)
	case RecordLicenseIssued:
		events, err = decideLicenseIssued(s, c)
	case RecordLicenseDelivered:
		events, err = decideLicenseDelivered(s, c)
	case RecordLicenseDeliveryFailed:
		events, err = decideLicenseDeliveryFailed(s, c)
	default:
		return nil, false, nil
	}
	return events, true, err
}

func decideRequestLicense(s State, c RequestLicense) ([]Event, error) {
	switch {
	case c.EventID == "" || c.EffectiveTime.IsZero():
		return nil, fmt.Errorf("%w: a license application needs eventId and effectiveTime", ErrInvalid)
	case !c.ExpireTime.IsZero() && !c.ExpireTime.After(c.EffectiveTime):
		return nil, fmt.Errorf("%w: expireTime must be after effectiveTime", ErrInvalid)
	case !s.Status.Live():
		return nil, ErrNotFound
	}
	if a, ok := s.Licenses[c.EventID]; ok {
		if a.Fingerprint != c.Fingerprint {
			return nil, ErrLicenseConflict
		}
		if a.Issued() && (a.Delivered || a.Failure != nil) {
			// A re-send after the upload was answered: upload the same
			// License again (an interrupted transfer at KooGallery's end).
			return []Event{LicenseResent{EventID: c.EventID}}, nil
		}
		return nil, nil // the same application, still being delivered
	}
	if s.Status == StatusFrozen {
		return nil, fmt.Errorf("%w: the instance is frozen", ErrLicenseOutsideValidity)
	}
	if c.ExpireTime.IsZero() && s.PeriodProduct() {
		return nil, ErrLicenseExpiryRequired
	}
	if end := s.ValidUntil(); !end.IsZero() && (!c.EffectiveTime.Before(end) || c.ExpireTime.After(end)) {
		return nil, fmt.Errorf("%w (valid until %s)", ErrLicenseOutsideValidity, end.UTC().Format(time.RFC3339))
	}
	return []Event{LicenseRequested{EventID: c.EventID, Fingerprint: c.Fingerprint,
		EffectiveTime: c.EffectiveTime.UTC(), ExpireTime: c.ExpireTime.UTC()}}, nil
}

// application returns the application an effect's command names.
func application(s State, eventID string) (LicenseApplication, error) {
	if !s.Status.Exists() {
		return LicenseApplication{}, ErrNotFound
	}
	a, ok := s.Licenses[eventID]
	if !ok {
		return a, fmt.Errorf("%w: no license application with eventId %q", ErrInvalid, eventID)
	}
	return a, nil
}

func decideLicenseIssued(s State, c RecordLicenseIssued) ([]Event, error) {
	if c.EventID == "" || c.LicenseID == "" || c.Text == "" {
		return nil, fmt.Errorf("%w: an issued license needs eventId, licenseId and text", ErrInvalid)
	}
	a, err := application(s, c.EventID)
	if err != nil {
		return nil, err
	}
	if a.Issued() {
		return nil, nil // the first License recorded is the one delivered
	}
	return []Event{LicenseIssued(c)}, nil
}

func decideLicenseDelivered(s State, c RecordLicenseDelivered) ([]Event, error) {
	if c.EventID == "" || c.Type == "" {
		return nil, fmt.Errorf("%w: a delivery needs eventId and type", ErrInvalid)
	}
	a, err := application(s, c.EventID)
	if err != nil {
		return nil, err
	}
	switch {
	case !a.Issued():
		return nil, fmt.Errorf("%w: the license of eventId %q was never issued", ErrInvalid, c.EventID)
	case a.Delivered:
		return nil, nil
	}
	return []Event{LicenseDelivered(c)}, nil
}

func decideLicenseDeliveryFailed(s State, c RecordLicenseDeliveryFailed) ([]Event, error) {
	if c.EventID == "" || c.Failure.Code == "" {
		return nil, fmt.Errorf("%w: a failed delivery needs eventId and a failure code", ErrInvalid)
	}
	a, err := application(s, c.EventID)
	if err != nil {
		return nil, err
	}
	if a.Delivered || (a.Failure != nil && *a.Failure == c.Failure) {
		return nil, nil // too late, or already recorded
	}
	return []Event{LicenseDeliveryFailed(c)}, nil
}

// evolveLicense folds the License C events; handled is false for others.
func evolveLicense(s State, e Event) (State, bool) {
	switch e := e.(type) {
	case LicenseRequested:
		s.Licenses = withApplication(s.Licenses, LicenseApplication{EventID: e.EventID, Fingerprint: e.Fingerprint,
			EffectiveTime: e.EffectiveTime, ExpireTime: e.ExpireTime})
	case LicenseIssued:
		a := s.Licenses[e.EventID]
		a.EventID, a.LicenseID, a.Text = e.EventID, e.LicenseID, e.Text
		s.Licenses = withApplication(s.Licenses, a)
	case LicenseDelivered:
		a := s.Licenses[e.EventID]
		a.EventID, a.Delivered, a.DeliveryType, a.SHA256, a.Failure = e.EventID, true, e.Type, e.SHA256, nil
		a.DeliveredOnce = true
		s.Licenses = withApplication(s.Licenses, a)
	case LicenseResent:
		a := s.Licenses[e.EventID]
		a.EventID, a.Delivered, a.Failure = e.EventID, false, nil
		a.Resends++
		s.Licenses = withApplication(s.Licenses, a)
	case LicenseDeliveryFailed:
		a := s.Licenses[e.EventID]
		f := e.Failure
		a.EventID, a.Failure = e.EventID, &f
		s.Licenses = withApplication(s.Licenses, a)
	default:
		return s, false
	}
	return s, true
}

// withApplication returns a copy of m with a set (a State handed out
// earlier never changes behind its holder's back).
func withApplication(m map[string]LicenseApplication, a LicenseApplication) map[string]LicenseApplication {
	out := make(map[string]LicenseApplication, len(m)+1)
	maps.Copy(out, m)
	out[a.EventID] = a
	return out
}

// decodeLicense returns a fresh value to decode a License C event into.
func decodeLicense(typ string) (Event, bool) {
	switch typ {
	case TypeLicenseRequested:
		return &LicenseRequested{}, true
	case TypeLicenseIssued:
		return &LicenseIssued{}, true
	case TypeLicenseDelivered:
		return &LicenseDelivered{}, true
	case TypeLicenseDeliveryFailed:
		return &LicenseDeliveryFailed{}, true
	case TypeLicenseResent:
		return &LicenseResent{}, true
	}
	return nil, false
}

func derefLicense(e Event) Event {
	switch v := e.(type) {
	case *LicenseRequested:
		return *v
	case *LicenseIssued:
		return *v
	case *LicenseDelivered:
		return *v
	case *LicenseDeliveryFailed:
		return *v
	case *LicenseResent:
		return *v
	}
	return e
}
