package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// desiredStreamConfig is the stream OpenJetStream creates: the log is kept
// forever (limits retention without any limit, no max age), every subject
// under the prefix, direct gets allowed for cheap reads.
func desiredStreamConfig(cfg JetStreamConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              cfg.Stream,
		Description:       "Gallerist event log",
		Subjects:          []string{cfg.Prefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        -1,
		MaxAge:            0,
		Discard:           jetstream.DiscardOld,
		Storage:           cfg.Storage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.DuplicateWindow,
		AllowDirect:       true,
	}
}

// ensureStream creates the stream if missing, else validates it and updates
// what can safely be updated.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, desiredStreamConfig(cfg))
		if err == nil {
			log.Info("event stream created", "stream", cfg.Stream, "subjects", cfg.Prefix+".>",
				"replicas", cfg.Replicas, "storage", cfg.Storage.String())
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("eventstore: create stream %s: %w", cfg.Stream, err)
		}
		// Another replica created it concurrently: validate theirs.
		st, err = js.Stream(ctx, cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: look up stream %s: %w", cfg.Stream, err)
	}
	return reconcileStream(ctx, js, st, cfg, log)
}

// reconcileStream checks an existing stream against cfg. Properties that
// cannot change (retention, storage type, mirror, subject transform,
// sealed) are errors wrapping ErrStreamMismatch; properties that can are
// updated in place, with a warning naming each change.
func reconcileStream(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, cfg JetStreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	info := st.CachedInfo()
	if info == nil {
		var err error
		if info, err = st.Info(ctx); err != nil {
			return nil, fmt.Errorf("eventstore: stream %s info: %w", cfg.Stream, err)
		}
	}
	c := info.Config
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: stream %s: %s", ErrStreamMismatch, cfg.Stream, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Retention != jetstream.LimitsPolicy:
		return nil, mismatch("retention is %s, the event log needs limits (retention cannot be changed)", c.Retention)
	case c.Storage != cfg.Storage:
		return nil, mismatch("storage is %s, configured %s (storage cannot be changed)", c.Storage, cfg.Storage)
	case c.Mirror != nil:
		return nil, mismatch("it is a mirror of %s and cannot be appended to", c.Mirror.Name)
	case c.SubjectTransform != nil:
		return nil, mismatch("it has a subject transform; event subjects must be stored as published")
	case c.Sealed:
		return nil, mismatch("it is sealed and cannot be appended to")
	}

	var changes []string
	if !subjectsCover(c.Subjects, cfg.Prefix) {
		c.Subjects = append(slices.Clone(c.Subjects), cfg.Prefix+".>")
		changes = append(changes, "subjects += "+cfg.Prefix+".>")
	}
	if c.MaxAge != 0 {
		changes = append(changes, fmt.Sprintf("max age %s → none (the log is kept forever)", c.MaxAge))
		c.MaxAge = 0
	}
	if c.MaxMsgs > 0 {
		changes = append(changes, fmt.Sprintf("max msgs %d → unlimited", c.MaxMsgs))
		c.MaxMsgs = -1
	}
	if c.MaxBytes > 0 {
		changes = append(changes, fmt.Sprintf("max bytes %d → unlimited", c.MaxBytes))
		c.MaxBytes = -1
	}
	if c.MaxMsgsPerSubject > 0 {
		changes = append(changes, fmt.Sprintf("max msgs per subject %d → unlimited", c.MaxMsgsPerSubject))
		c.MaxMsgsPerSubject = -1
	}
	if !c.AllowDirect {
		changes = append(changes, "allow direct → true")
		c.AllowDirect = true
	}
	if c.NoAck {
		changes = append(changes, "no ack → false")
		c.NoAck = false
	}
	if c.Duplicates != cfg.DuplicateWindow {
		changes = append(changes, fmt.Sprintf("duplicate window %s → %s", c.Duplicates, cfg.DuplicateWindow))
		c.Duplicates = cfg.DuplicateWindow
	}
	if c.Replicas != cfg.Replicas {
		log.Warn("event stream replica count differs from configuration; leaving it as is",
			"stream", cfg.Stream, "replicas", c.Replicas, "configured", cfg.Replicas)
	}
	if len(changes) == 0 {
		log.Debug("event stream validated", "stream", cfg.Stream)
		return st, nil
	}
	log.Warn("updating event stream configuration", "stream", cfg.Stream, "changes", strings.Join(changes, "; "))
	updated, err := js.UpdateStream(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%w: stream %s: update (%s): %w", ErrStreamMismatch, cfg.Stream, strings.Join(changes, "; "), err)
	}
	return updated, nil
}

// subjectsCover reports whether one of the stream subjects captures every
// subject under prefix, i.e. covers the filter "<prefix>.>".
func subjectsCover(subjects []string, prefix string) bool {
	target := append(strings.Split(prefix, "."), ">")
	for _, s := range subjects {
		if patternCovers(strings.Split(s, "."), target) {
			return true
		}
	}
	return false
}

// patternCovers reports whether pattern p matches every subject matched by
// target, whose last token is ">" and whose other tokens are literals.
func patternCovers(p, target []string) bool {
	for i, t := range target {
		if i >= len(p) {
			return false
		}
		switch {
		case p[i] == ">":
			return true
		case t == ">":
			return false // only ">" covers ">"
		case p[i] == "*" || p[i] == t:
		default:
			return false
		}
	}
	return false
}
