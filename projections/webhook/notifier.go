package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/projections/effects"
)

// Name is the effect name of the notifier: its durable consumer is
// "effect-webhook" and its progress streams "<prefix>.effect.webhook.<id>".
const Name = "webhook"

// NotifiedTypes are the instance events the notifier sends: the whole
// lifecycle (created, provisioned or failed, refreshed — renewal,
// trial-to-formal, cancelled renewal period, renewal with change —,
// upgraded, frozen, unfrozen, released).
var NotifiedTypes = []string{
	instance.TypeCreated, instance.TypeProvisioned, instance.TypeProvisioningFailed, instance.TypeRefreshed,
	instance.TypeUpgraded, instance.TypeFrozen, instance.TypeUnfrozen, instance.TypeReleased,
}

// ErrAwaitingProvisioning is the retryable error of an InstanceCreated on
// a provisioning route whose outcome is not recorded yet: the instance's
// later notifications wait for it, so that none reaches the vendor before
// the vendor accepted (or refused) the creation.
var ErrAwaitingProvisioning = errors.New("webhook: waiting for the provisioning webhook's outcome")

// Notifier is the vendor webhook effect ([effects.Handler]): for every
// lifecycle event of an instance on a route with a webhook it POSTs a
// signed [Notification] (see the package doc). Events of routes without a
// webhook are done at once.
type Notifier struct {
	resolve Resolver
	store   eventstore.Store
	hc      *http.Client
}

var _ effects.Handler = (*Notifier)(nil)

// NewNotifier returns the notifier. store reads the instance's events (the
// provisioning outcome, see ErrAwaitingProvisioning); hc nil means
// NewHTTPClient().
func NewNotifier(resolve Resolver, store eventstore.Store, hc *http.Client) (*Notifier, error) {
	if resolve == nil || store == nil {
		return nil, errors.New("webhook: NewNotifier needs a resolver and a store")
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	return &Notifier{resolve: resolve, store: store, hc: hc}, nil
}

// Name implements effects.Handler.
func (n *Notifier) Name() string { return Name }

// Wants implements effects.Handler.
func (n *Notifier) Wants(eventType string) bool { return slices.Contains(NotifiedTypes, eventType) }

// Handle implements effects.Handler: nil for a 2xx answer (or nothing to
// send), an effects.Permanent error for an answer retrying cannot change,
// another error for one worth retrying.
func (n *Notifier) Handle(ctx context.Context, ev event.Envelope, seq uint64) error {
	if ev.Causation.TestFlag {
		return nil // a debug call changes nothing; there is nothing to tell
	}
	cfg, ok := n.resolve(ev.Causation.Route)
	if !ok {
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return effects.Permanent(fmt.Errorf("route %q: %w", ev.Causation.Route, err))
	}
	if ev.Type == instance.TypeCreated && cfg.Provisioning {
		return n.provisioned(ctx, ev, seq)
	}
	a, err := post(ctx, n.hc, cfg, NotificationOf(ev, seq))
	switch {
	case err != nil:
		return err
	case a.status/100 == 2:
		return nil
	case retryable(a.status):
		return fmt.Errorf("webhook: %s answered %s", redact(cfg.URL), a.describe())
	}
	return effects.Permanent(fmt.Errorf("webhook: %s answered %s", redact(cfg.URL), a.describe()))
}

// provisioningWait is how long one attempt of an InstanceCreated on a
// provisioning route waits for the outcome before it fails (and is retried
// with the runner's backoff): the provisioning effect sees the same event
// at the same moment, so the outcome usually follows within the vendor's
// answer time.
const provisioningWait = 5 * time.Second

// provisioned is done once the provisioning outcome of the instance created
// at seq is in the log: the provisioning effect already delivered this
// InstanceCreated to the vendor and recorded the answer.
func (n *Notifier) provisioned(ctx context.Context, ev event.Envelope, seq uint64) error {
	deadline := time.Now().Add(provisioningWait)
	poll := 20 * time.Millisecond
	for {
		recs, err := n.store.Load(ctx, eventstore.StreamID{Kind: instance.Kind, Keys: []string{ev.AggregateID}}, seq)
		if err != nil {
			return fmt.Errorf("webhook: reading instance %s: %w", ev.AggregateID, err)
		}
		for _, rec := range recs {
			switch rec.Event.Type {
			case instance.TypeProvisioned, instance.TypeProvisioningFailed, instance.TypeReleased:
				return nil
			}
		}
		if time.Now().Add(poll).After(deadline) {
			return ErrAwaitingProvisioning
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ErrAwaitingProvisioning, ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, time.Second)
	}
}
