// Package effect holds the events that record the progress of side effects
// (vendor webhook, Query Order, …) per effect and instance: what was done,
// what was parked and why, and operators' re-drives. An effect's progress
// for one instance is its own stream: kind "effect", keys [effect name,
// instance id]. Pure data, no I/O.
package effect

// Kind is the aggregate kind of effect progress streams.
const Kind = "effect"

// Event type names.
const (
	TypeDone     = "EffectDone"
	TypeParked   = "EffectParked"
	TypeRedriven = "EffectRedriven"
)

// Done: the effect handled the instance event at EventSeq (stream sequence)
// successfully; Attempts counts the tries it took.
type Done struct {
	Effect     string `json:"effect"`
	InstanceID string `json:"instanceId"`
	EventID    string `json:"eventId"`
	EventSeq   uint64 `json:"eventSeq"`
	EventType  string `json:"eventType"`
	Attempts   int    `json:"attempts"`
}

// Parked: the effect gave up on the instance event at EventSeq after
// Attempts tries; Reason is the last error. Later events of the same
// instance are held back behind it until a re-drive.
type Parked struct {
	Effect     string `json:"effect"`
	InstanceID string `json:"instanceId"`
	EventID    string `json:"eventId"`
	EventSeq   uint64 `json:"eventSeq"`
	EventType  string `json:"eventType"`
	Attempts   int    `json:"attempts"`
	Reason     string `json:"reason"`
}

// Redriven: an operator asked to try the parked events again.
type Redriven struct {
	Effect     string `json:"effect"`
	InstanceID string `json:"instanceId"`
	// Operator names who asked (free text, for the audit trail).
	Operator string `json:"operator,omitempty"`
}
