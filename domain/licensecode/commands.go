package licensecode

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Domain errors; the ingress maps them to KooGallery result codes
// (codes-and-rules.md §2.5).
var (
	// ErrNotFound: the code was never seen, or no longer accepts the
	// command (released): 000003 (授权码ID不存在).
	ErrNotFound = errors.New("authorization code does not exist")
	// ErrInvalid: the command itself is malformed: 000002.
	ErrInvalid = errors.New("invalid command")
)

// MaxCodeLen is the documented maximum length of a code (license.md §3.2).
const MaxCodeLen = 64

// Scene is the reason of a refreshLicenseCode.
type Scene string

// The scenes of refreshLicenseCode (license.md §3.2, codes-and-rules.md §9).
const (
	SceneRenewal                  Scene = "RENEWAL"
	SceneUnsubscribeRenewalPeriod Scene = "UNSUBSCRIBE_RENEWAL_PERIOD"
)

// Scenes lists every valid scene.
var Scenes = []Scene{SceneRenewal, SceneUnsubscribeRenewalPeriod}

// ParseScene validates a scene; anything else is 000002.
func ParseScene(s string) (Scene, error) {
	for _, v := range Scenes {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: unknown scene %q", ErrInvalid, s)
}

// Target is the status updateLicenseCodeStatus asks for.
type Target string

// The targets of updateLicenseCodeStatus (license.md §3.3).
const (
	TargetFreeze   Target = "FREEZE"
	TargetUnfreeze Target = "UNFREEZE"
)

// ParseTarget validates an updateLicenseCodeStatus status; anything else is
// 000002.
func ParseTarget(s string) (Target, error) {
	switch Target(s) {
	case TargetFreeze, TargetUnfreeze:
		return Target(s), nil
	}
	return "", fmt.Errorf("%w: unknown status %q", ErrInvalid, s)
}

// ParseCode validates an authorization code: not empty, at most MaxCodeLen
// characters, valid UTF-8 without control characters.
func ParseCode(s string) (string, error) {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxCodeLen {
		return "", fmt.Errorf("%w: license must be 1 to %d characters", ErrInvalid, MaxCodeLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: license contains a control character", ErrInvalid)
		}
	}
	return s, nil
}

// Command is something asked of a code.
type Command interface{ commandName() string }

// Register makes a code known: the vendor's software handed it over
// (license.md §3.1). A repeat changes nothing.
type Register struct {
	Code      string
	Reference string
}

// Refresh moves the expiry (refreshLicenseCode, license.md §3.2).
type Refresh struct {
	Scene       Scene
	OrderID     string
	OrderLineID string
	ProductID   string
	ExpireTime  time.Time
	// Debug: testFlag=1; validated, then nothing changes.
	Debug bool
}

// SetStatus freezes or unfreezes (updateLicenseCodeStatus, license.md §3.3).
type SetStatus struct {
	Target Target
	Debug  bool
}

// Release deletes what is bound to the code (releaseLicenseCode,
// license.md §3.4). OrderID is the unsubscribe order when one caused it.
type Release struct {
	OrderID     string
	OrderLineID string
	Debug       bool
}

// RecordActivation records KooGallery's answer to the activate call
// (outgoing.md §6). Info is the license_code_info of a success, when sent.
type RecordActivation struct {
	Answer     Answer
	EffectTime time.Time // real_effect_time, when Gallerist sent one
	Info       *CodeInfo
}

// RecordQuery records KooGallery's answer to the query / heartbeat call
// (outgoing.md §7). Info is set for a success.
type RecordQuery struct {
	Answer Answer
	Info   *QueryInfo
}

// RecordUsage records KooGallery's answer to a usage-statistics report for
// this code (outgoing.md §8) and what was reported.
type RecordUsage struct {
	Answer  Answer
	Entries []UsageEntry
}

func (Register) commandName() string         { return "register" }
func (Refresh) commandName() string          { return "refresh" }
func (SetStatus) commandName() string        { return "setStatus" }
func (Release) commandName() string          { return "release" }
func (RecordActivation) commandName() string { return "recordActivation" }
func (RecordQuery) commandName() string      { return "recordQuery" }
func (RecordUsage) commandName() string      { return "recordUsage" }

// Name names a command for logs.
func Name(c Command) string { return c.commandName() }

// Validate checks a Register on its own.
func (c Register) Validate() error {
	_, err := ParseCode(c.Code)
	return err
}

// Validate checks a Refresh on its own: a known scene, the order (the
// idempotency key) and the new expiry.
func (c Refresh) Validate() error {
	if _, err := ParseScene(string(c.Scene)); err != nil {
		return err
	}
	if c.OrderID == "" {
		return fmt.Errorf("%w: refresh needs orderId", ErrInvalid)
	}
	if c.ExpireTime.IsZero() {
		return fmt.Errorf("%w: refresh needs expireTime", ErrInvalid)
	}
	return nil
}

// Validate checks a SetStatus on its own.
func (c SetStatus) Validate() error {
	_, err := ParseTarget(string(c.Target))
	return err
}

// Validate checks a Release on its own; every Release is valid.
func (c Release) Validate() error { return nil }

// Validate checks a RecordActivation on its own.
func (c RecordActivation) Validate() error {
	if err := c.Answer.validate("activation"); err != nil {
		return err
	}
	if c.Info != nil && !c.Answer.OK() {
		return fmt.Errorf("%w: a failed activation carries no license_code_info", ErrInvalid)
	}
	if c.Info != nil && c.Info.Amount < 0 {
		return fmt.Errorf("%w: amount %d is negative", ErrInvalid, c.Info.Amount)
	}
	return nil
}

// Validate checks a RecordQuery on its own: a success carries its data, a
// failure none.
func (c RecordQuery) Validate() error {
	if err := c.Answer.validate("query"); err != nil {
		return err
	}
	if c.Answer.OK() != (c.Info != nil) {
		return fmt.Errorf("%w: a query outcome carries data exactly when it succeeded", ErrInvalid)
	}
	if c.Info != nil && c.Info.Status == "" {
		return fmt.Errorf("%w: a query answer needs status", ErrInvalid)
	}
	return nil
}

// MaxUsageEntries is the most entries one code may carry in a report
// (outgoing.md §8).
const MaxUsageEntries = 100

// Validate checks a RecordUsage on its own: 1 to 100 entries, each with
// exactly one of id and a non-negative active_num.
func (c RecordUsage) Validate() error {
	if err := c.Answer.validate("usage"); err != nil {
		return err
	}
	if len(c.Entries) == 0 || len(c.Entries) > MaxUsageEntries {
		return fmt.Errorf("%w: a usage report carries 1 to %d entries, not %d", ErrInvalid, MaxUsageEntries, len(c.Entries))
	}
	for i, e := range c.Entries {
		if (e.ID == "") == (e.ActiveNum == nil) {
			return fmt.Errorf("%w: usage entry %d needs exactly one of id and active_num", ErrInvalid, i)
		}
		if e.ActiveNum != nil && *e.ActiveNum < 0 {
			return fmt.Errorf("%w: usage entry %d: active_num %d is negative", ErrInvalid, i, *e.ActiveNum)
		}
	}
	return nil
}
