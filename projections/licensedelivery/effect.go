// Package licensedelivery is the License C delivery effect (license.md
// §4.6, outgoing.md §5): for every getLicenseAsync application recorded on
// an instance (InstanceLicenseRequested) it generates the License with the
// route's issuer, records it (InstanceLicenseIssued: every upload of the
// application sends that same text), uploads it to KooGallery with the
// string/file upload (event_id = the application's eventId) and records the
// outcome (InstanceLicenseDelivered, or InstanceLicenseDeliveryFailed for a
// refusal). It is an effects.Handler: the effects runner delivers the
// events in order per instance, retries the transient failures with backoff
// and parks the permanent ones for an operator's re-drive.
package licensedelivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/projections/effects"
	"github.com/gallerist/gallerist/projections/openapi"
)

// Name is the effect's stable name (its consumer and progress streams).
const Name = "licensedelivery"

// Actor is the Causation.Actor of the events the effect records.
const Actor = "licensedelivery"

// Uploader delivers a License to KooGallery; *openapi.Client implements it.
// Errors are classified with openapi.IsTemporary, *openapi.APIError and
// openapi.ErrInvalidRequest.
type Uploader interface {
	UploadLicense(ctx context.Context, eventID string, lic openapi.LicenseUpload) (openapi.UploadReceipt, error)
}

// Recorder reads and runs instance commands; *instances.Service implements
// it.
type Recorder interface {
	GetAt(ctx context.Context, id string, seq uint64) (instance.State, error)
	Execute(ctx context.Context, id string, cmd instance.Command, cause event.Causation) (instance.State, error)
}

// Effect is the License C delivery effect.
type Effect struct {
	up      Uploader
	rec     Recorder
	issuers Resolver
	log     *slog.Logger
}

var _ effects.Handler = (*Effect)(nil)

// New builds the effect: up uploads (the open-API client), rec records on
// the instances, issuers gives each license-c route's issuer
// (IssuersFromRoutes). A nil log discards.
func New(up Uploader, rec Recorder, issuers Resolver, log *slog.Logger) (*Effect, error) {
	if up == nil || rec == nil || issuers == nil {
		return nil, errors.New("licensedelivery: the uploader, the recorder and the issuers are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Effect{up: up, rec: rec, issuers: issuers, log: log.With("effect", Name)}, nil
}

// Name implements effects.Handler.
func (e *Effect) Name() string { return Name }

// Wants implements effects.Handler: the License applications.
func (e *Effect) Wants(eventType string) bool {
	return eventType == instance.TypeLicenseRequested || eventType == instance.TypeLicenseResent
}

// Handle implements effects.Handler. It is idempotent: an application
// already delivered is skipped, a License already recorded is uploaded
// again rather than generated anew, and KooGallery takes a re-sent upload
// for the same event_id. Debug events are skipped (the ingress records
// none), as are applications of an instance released or failed before
// their delivery. Transport failures and temporary API errors are returned
// for a retry; refusals are recorded (InstanceLicenseDeliveryFailed) and
// returned as effects.Permanent, which parks the event.
func (e *Effect) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	if ev.AggregateKind != instance.Kind || !e.Wants(ev.Type) {
		return nil
	}
	log := e.log.With("instanceId", ev.AggregateID, "eventId", ev.ID, "seq", seq, "route", ev.Causation.Route)
	if ev.Causation.TestFlag {
		log.Debug("debug event, no license delivered")
		return nil
	}
	dec, err := instance.Decode(ev.Type, ev.Version, ev.Data)
	if err != nil {
		log.Error("undecodable event", "err", err)
		return effects.Permanent(err)
	}
	var req instance.LicenseRequested
	switch d := dec.(type) {
	case instance.LicenseRequested:
		req = d
	case instance.LicenseResent: // upload the License already issued again
		req.EventID = d.EventID
	}
	if req.EventID == "" {
		return effects.Permanent(fmt.Errorf("licensedelivery: %s event without an eventId", ev.Type))
	}
	log = log.With("licenseEventId", req.EventID)
	st, err := e.rec.GetAt(ctx, ev.AggregateID, seq)
	if err != nil {
		// ErrNotFound too: the event is in the log, so a read that misses
		// the instance is behind.
		return fmt.Errorf("licensedelivery: read instance %s: %w", ev.AggregateID, err)
	}
	if st.Status == instance.StatusReleased || st.Status == instance.StatusFailed {
		log.Warn("the instance is gone; the license is not delivered", "status", st.Status)
		return nil
	}
	app, found := st.LicenseApplication(req.EventID)
	if !found {
		return effects.Permanent(fmt.Errorf("licensedelivery: instance %s has no application %q at sequence %d", ev.AggregateID, req.EventID, seq))
	}
	if app.Delivered {
		return nil
	}
	cause := event.Causation{Actor: Actor, Route: ev.Causation.Route}
	if !app.Issued() {
		if app, err = e.issue(ctx, ev, req, st, cause); err != nil {
			log.Warn("issuing the license failed", "err", err, "permanent", effects.IsPermanent(err))
			return err
		}
	}

	rcpt, err := e.up.UploadLicense(ctx, req.EventID, openapi.LicenseUpload{Text: app.Text})
	if err != nil {
		if openapi.IsTemporary(err) {
			log.Warn("uploading the license failed, will retry", "err", err)
			return err
		}
		var ae *openapi.APIError
		if !errors.As(err, &ae) && !errors.Is(err, openapi.ErrInvalidRequest) {
			log.Warn("uploading the license failed", "err", err)
			return err
		}
		log.Error("KooGallery refused the license upload", "err", err)
		failed := instance.RecordLicenseDeliveryFailed{EventID: req.EventID, Failure: failureOf(err, ae)}
		if _, rerr := e.rec.Execute(ctx, ev.AggregateID, failed, cause); rerr != nil {
			// Retried: the next attempt uploads again and records the refusal.
			return fmt.Errorf("licensedelivery: record refusal of %s: %w", req.EventID, rerr)
		}
		return effects.Permanent(err)
	}
	done := instance.RecordLicenseDelivered{EventID: req.EventID, Type: string(rcpt.Type), SHA256: rcpt.SHA256}
	if _, err := e.rec.Execute(ctx, ev.AggregateID, done, cause); err != nil {
		if errors.Is(err, instance.ErrInvalid) {
			return effects.Permanent(fmt.Errorf("licensedelivery: record delivery of %s: %w", req.EventID, err))
		}
		// Retried: re-sending the same License for the event is safe.
		return fmt.Errorf("licensedelivery: record delivery of %s: %w", req.EventID, err)
	}
	log.Info("license delivered", "type", rcpt.Type, "licenseId", app.LicenseID)
	return nil
}

// issue generates the application's License and records it; it returns
// the application as recorded (the first License recorded wins).
func (e *Effect) issue(ctx context.Context, ev event.Envelope, req instance.LicenseRequested, st instance.State, cause event.Causation) (instance.LicenseApplication, error) {
	iss, found := e.issuers(ev.Causation.Route)
	if !found || iss == nil {
		return instance.LicenseApplication{}, effects.Permanent(fmt.Errorf("licensedelivery: no license issuer for route %q", ev.Causation.Route))
	}
	out, err := iss.Issue(ctx, Request{
		Route: ev.Causation.Route, InstanceID: ev.AggregateID, EventID: req.EventID, Fingerprint: req.Fingerprint,
		EffectiveTime: req.EffectiveTime, ExpireTime: req.ExpireTime, RequestedAt: ev.OccurredAt, Instance: st,
	})
	switch {
	case errors.Is(err, licensetoken.ErrInvalidLicense), errors.Is(err, licensetoken.ErrBadKey):
		return instance.LicenseApplication{}, effects.Permanent(err)
	case err != nil:
		return instance.LicenseApplication{}, err
	case out.Text == "" || out.LicenseID == "":
		return instance.LicenseApplication{}, effects.Permanent(errors.New("licensedelivery: the issuer returned an empty license"))
	}
	st, err = e.rec.Execute(ctx, ev.AggregateID, instance.RecordLicenseIssued{EventID: req.EventID, LicenseID: out.LicenseID, Text: out.Text}, cause)
	if err != nil {
		if errors.Is(err, instance.ErrInvalid) {
			return instance.LicenseApplication{}, effects.Permanent(err)
		}
		return instance.LicenseApplication{}, fmt.Errorf("licensedelivery: record license of %s: %w", req.EventID, err)
	}
	app, found := st.LicenseApplication(req.EventID)
	if !found || !app.Issued() {
		return app, fmt.Errorf("licensedelivery: the license of %s is not recorded yet", req.EventID)
	}
	return app, nil
}

// maxFailureMsg bounds the message kept with a refusal.
const maxFailureMsg = 255

// failureOf describes a refused upload: KooGallery's error_code and
// error_msg, else the HTTP status, else the client's refusal.
func failureOf(err error, ae *openapi.APIError) instance.Failure {
	if ae == nil {
		return instance.Failure{Code: "invalid-request", Message: truncate(err.Error(), maxFailureMsg)}
	}
	f := instance.Failure{Code: ae.ResultCode, Message: ae.ResultMsg}
	if f.Code == "" {
		f.Code = fmt.Sprintf("HTTP %d", ae.HTTPStatus)
	}
	if f.Message == "" {
		f.Message = http.StatusText(ae.HTTPStatus)
	}
	f.Message = truncate(f.Message, maxFailureMsg)
	return f
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
