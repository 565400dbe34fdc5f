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

// Create asks for a new instance (newInstance).
type Create struct {
	InstanceID  string
	OrderID     string
	OrderLineID string
	BusinessID  string
}

// Refresh changes the expiry (refreshInstance).
type Refresh struct {
	Scene       Scene
	OrderID     string
	OrderLineID string
	ProductID   string
	ExpireTime  time.Time
}

// SetStatus freezes or unfreezes (updateInstanceStatus).
type SetStatus struct{ Target Target }

// Release deletes the instance (releaseInstance).
type Release struct {
	OrderID     string
	OrderLineID string
}

// Upgrade applies an upgrade order (upgradeInstance).
type Upgrade struct {
	OrderID     string
	OrderLineID string
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

// Name names a command for logs.
func Name(c Command) string { return c.commandName() }
