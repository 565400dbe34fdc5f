package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/provision"
)

// Provisioner asks the vendor to create the tenant ([provision.Provisioner]):
// it POSTs the instance's InstanceCreated notification to the route's
// webhook and reads the app info, or a refusal, from the answer (see the
// package doc). Use it on routes whose Config has Provisioning set; the
// built-in provisioner stays the default of every other route (see
// [Provisioner.Resolver]).
type Provisioner struct {
	resolve Resolver
	store   eventstore.Store
	hc      *http.Client
}

var _ provision.Provisioner = (*Provisioner)(nil)

// NewProvisioner returns the provisioner. store reads the InstanceCreated
// event, so that the body is the very notification the notifier would
// send; hc nil means NewHTTPClient().
func NewProvisioner(resolve Resolver, store eventstore.Store, hc *http.Client) (*Provisioner, error) {
	if resolve == nil || store == nil {
		return nil, errors.New("webhook: NewProvisioner needs a resolver and a store")
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	return &Provisioner{resolve: resolve, store: store, hc: hc}, nil
}

// Resolver is the provisioning effect's resolver: p on routes whose
// webhook provisions, nil (the worker's default, the built-in provisioner)
// everywhere else.
func (p *Provisioner) Resolver() provision.Resolver {
	return func(route string) provision.Provisioner {
		if cfg, ok := p.resolve(route); ok && cfg.Provisioning {
			return p
		}
		return nil
	}
}

// Refusal is the body of a 409 or 422 answer to InstanceCreated.
type Refusal struct {
	// ResultCode is a KooGallery creation code, 000100–000107.
	ResultCode string `json:"resultCode"`
	// Message is shown to the buyer (resultMsg); at most 255 characters.
	Message string `json:"message"`
}

// Provision implements provision.Provisioner.
func (p *Provisioner) Provision(ctx context.Context, req provision.Request) (instance.AppInfo, error) {
	cfg, ok := p.resolve(req.Route)
	if !ok || !cfg.Provisioning {
		return instance.AppInfo{}, fmt.Errorf("webhook: route %q has no provisioning webhook", req.Route)
	}
	if err := cfg.Validate(); err != nil {
		return instance.AppInfo{}, fmt.Errorf("route %q: %w", req.Route, err)
	}
	n, err := p.created(ctx, req)
	if err != nil {
		return instance.AppInfo{}, err
	}
	a, err := post(ctx, p.hc, cfg, n)
	if err != nil {
		return instance.AppInfo{}, err
	}
	where := redact(cfg.URL)
	switch {
	case a.status/100 == 2:
		var app instance.AppInfo
		if err := json.Unmarshal(a.body, &app); err != nil {
			return instance.AppInfo{}, fmt.Errorf("webhook: %s answered %d with a body that is not app info: %w", where, a.status, err)
		}
		return app, nil // the worker validates it against KooGallery's limits
	case a.status == http.StatusConflict || a.status == http.StatusUnprocessableEntity:
		var r Refusal
		if err := json.Unmarshal(a.body, &r); err != nil || !creationCode(r.ResultCode) {
			return instance.AppInfo{}, fmt.Errorf("webhook: %s refused without a creation code 000100–000107 (%s); retrying", where, a.describe())
		}
		return instance.AppInfo{}, provision.Refuse(r.ResultCode, r.Message)
	}
	return instance.AppInfo{}, fmt.Errorf("webhook: %s answered %s", where, a.describe())
}

// created reads the InstanceCreated event of the request from the log.
func (p *Provisioner) created(ctx context.Context, req provision.Request) (Notification, error) {
	recs, err := p.store.Load(ctx, eventstore.StreamID{Kind: instance.Kind, Keys: []string{req.InstanceID}}, 0)
	if err != nil {
		return Notification{}, fmt.Errorf("webhook: reading instance %s: %w", req.InstanceID, err)
	}
	for _, rec := range recs {
		if rec.Event.ID == req.EventID {
			return NotificationOf(rec.Event, rec.Seq), nil
		}
	}
	return Notification{}, fmt.Errorf("webhook: event %s of instance %s not found in the log", req.EventID, req.InstanceID)
}

func creationCode(c string) bool {
	return len(c) == 6 && c >= "000100" && c <= "000107"
}
