package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/instance"
)

// events prints one instance's history from the log: one JSON line per
// event (sequence, type, time, causation, data), oldest first.
func events(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./data", "data directory of the embedded store (when gallerist serve is not running on it)")
	natsURL := fs.String("nats-url", "", "read from this NATS server or cluster instead of the embedded store")
	stream := fs.String("stream", eventstore.DefaultStream, "JetStream stream name")
	prefix := fs.String("subject-prefix", eventstore.DefaultPrefix, "subject prefix of the event log")
	secrets := fs.Bool("show-secrets", false, "print app info passwords instead of redacting them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gallerist events [flags] <instanceId>")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give exactly one instanceId")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var nc *nats.Conn
	if *natsURL != "" {
		c, err := bus.Connect(ctx, *natsURL, "gallerist-events", log)
		if err != nil {
			return err
		}
		nc = c
	} else {
		if _, err := os.Stat(*dataDir); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: *dataDir}, log)
		if err != nil {
			if errors.Is(err, bus.ErrDataDirInUse) {
				return fmt.Errorf("data directory %s is in use (gallerist serve?): run serve with --nats-listen <host:port> and pass --nats-url nats://<host:port>", *dataDir)
			}
			return fmt.Errorf("embedded NATS server on %s: %w", *dataDir, err)
		}
		defer e.Shutdown()
		if nc, err = e.Connect(); err != nil {
			return err
		}
	}
	defer nc.Close()
	store, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{Stream: *stream, Prefix: *prefix}, log)
	if err != nil {
		return err
	}
	recs, err := store.Load(ctx, eventstore.StreamID{Kind: instance.Kind, Keys: []string{fs.Arg(0)}}, 0)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("no events for instance %q", fs.Arg(0))
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		data := r.Event.Data
		if !*secrets {
			data = redact(data)
		}
		if err := enc.Encode(map[string]any{
			"seq": r.Seq, "id": r.Event.ID, "type": r.Event.Type, "v": r.Event.Version,
			"occurredAt": r.Event.OccurredAt, "causation": r.Event.Causation, "data": data,
		}); err != nil {
			return err
		}
	}
	return nil
}

// redact hides appInfo.password in event data.
func redact(data json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m["appInfo"] == nil {
		return data
	}
	var app map[string]any
	if json.Unmarshal(m["appInfo"], &app) != nil || app["password"] == nil {
		return data
	}
	app["password"] = "[redacted]"
	b, err := json.Marshal(app)
	if err != nil {
		return data
	}
	m["appInfo"] = b
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}
