package instance

import (
	"errors"
	"fmt"
	"time"
)

// Scene is the reason of a refreshInstance.
type Scene string

// The scenes KooGallery sends with refreshInstance.
const (
	SceneTrialToFormal            Scene = "TRIAL_TO_FORMAL"
	SceneRenewal                  Scene = "RENEWAL"
	SceneUnsubscribeRenewalPeriod Scene = "UNSUBSCRIBE_RENEWAL_PERIOD"
	SceneRenewalChange            Scene = "RENEWAL_CHANGE"
)

// Scenes lists every valid scene.
var Scenes = []Scene{SceneTrialToFormal, SceneRenewal, SceneUnsubscribeRenewalPeriod, SceneRenewalChange}

// ParseScene validates a scene.
func ParseScene(s string) (Scene, error) {
	for _, v := range Scenes {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: unknown scene %q", ErrInvalid, s)
}

// Target is the status updateInstanceStatus asks for.
type Target string

// The targets of updateInstanceStatus.
const (
	TargetFreeze   Target = "FREEZE"
	TargetUnfreeze Target = "UNFREEZE"
)

// ParseTarget validates an updateInstanceStatus status.
func ParseTarget(s string) (Target, error) {
	switch Target(s) {
	case TargetFreeze, TargetUnfreeze:
		return Target(s), nil
	}
	return "", fmt.Errorf("%w: unknown status %q", ErrInvalid, s)
}

// Domain errors; the ingress maps them to KooGallery result codes.
var (
	// ErrNotFound: the instance does not exist, or no longer accepts the
	// command (released, or never provisioned).
	ErrNotFound = errors.New("instance does not exist")
	// ErrInvalid: the command itself is malformed.
	ErrInvalid = errors.New("invalid command")
	// ErrIDInUse: a create names an instance id that already belongs to
	// another order.
	ErrIDInUse = errors.New("instance id already used by another order")
)

// RefusedError is returned for a create whose provisioning was refused.
type RefusedError struct{ Failure Failure }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("provisioning refused (%s): %s", e.Failure.Code, e.Failure.Message)
}

// Command is something asked of an instance.
type Command interface{ commandName() string }

// Create asks for a new instance (newInstance). A SaaS V1 create has no
// order line (OrderLineID is empty) and carries V1.
type Create struct {
	InstanceID  string
	OrderID     string
	OrderLineID string
	BusinessID  string
	V1          *V1Order
}

// Refresh changes the expiry (refreshInstance).
type Refresh struct {
	Scene       Scene
	OrderID     string
	OrderLineID string
	ProductID   string
	ExpireTime  time.Time
	// SaaS V1 details (saas-v1.md §4): the order's period and amount (exact
	// decimal text, negative for a cancellation).
	PeriodType   string
	PeriodNumber int
	OrderAmount  string
	// Reactivate (SaaS V1): a frozen instance becomes active again once the
	// renewal is applied; V1 has no separate unfreeze for period products.
	// The renewal and the unfreeze are two decisions (one event each): the
	// command is decided again until it decides nothing (see Settle).
	Reactivate bool
}

// SetStatus freezes or unfreezes (updateInstanceStatus; SaaS V1
// instanceStatus and expireInstance). Reason is recorded with a freeze,
// e.g. FrozenExpired.
type SetStatus struct {
	Target Target
	Reason string
}

// Release deletes the instance (releaseInstance).
type Release struct {
	OrderID     string
	OrderLineID string
	// OrderAmount is the SaaS V1 reconciliation amount (decimal text).
	OrderAmount string
}

// Upgrade applies an upgrade order (upgradeInstance; SaaS V1 upgrade, which
// carries V1 and no order line).
type Upgrade struct {
	OrderID     string
	OrderLineID string
	V1          *V1Upgrade
}

// CheckChange asks whether a renewal with change is acceptable
// (changeInstanceCheck). The domain only checks existence; the vendor's
// policy decides the rest.
type CheckChange struct{}

// RecordProvisioning records the provisioner's outcome: exactly one of
// AppInfo and Failure is set.
type RecordProvisioning struct {
	AppInfo *AppInfo
	Failure *Failure
}

func (Create) commandName() string             { return "create" }
func (Refresh) commandName() string            { return "refresh" }
func (SetStatus) commandName() string          { return "setStatus" }
func (Release) commandName() string            { return "release" }
func (Upgrade) commandName() string            { return "upgrade" }
func (CheckChange) commandName() string        { return "checkChange" }
func (RecordProvisioning) commandName() string { return "recordProvisioning" }

// MaxSettleSteps bounds how often one command is decided again until it
// decides nothing: every command settles within this many decisions.
const MaxSettleSteps = 3

// Name names a command for logs.
func Name(c Command) string { return c.commandName() }
