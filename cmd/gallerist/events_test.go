package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus"
	"github.com/gallerist/gallerist/bus/eventstore"
	"github.com/gallerist/gallerist/domain/event"
	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/instances"
)

// writeHistory creates one instance with a few events in an embedded store
// on dir, then stops the server (as `gallerist events` runs without serve).
func writeHistory(t *testing.T, dir, id string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := bus.StartEmbedded(ctx, bus.ServerConfig{DataDir: dir, SyncInterval: time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := eventstore.OpenJetStream(ctx, nc, eventstore.JetStreamConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := instances.New(store, nil, instances.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, "o-1", "l-1", id, event.Causation{Activity: "newInstance"}, 0); err != nil {
		t.Fatal(err)
	}
	app := instance.AppInfo{FrontEndURL: "https://x/" + id, UserName: "admin", Password: "S3cret-Pass!"}
	if _, err := svc.RecordProvisioning(ctx, id, instance.RecordProvisioning{AppInfo: &app}, event.Causation{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Execute(ctx, id, instance.SetStatus{Target: instance.TargetFreeze}, event.Causation{Activity: "updateInstanceStatus"}); err != nil {
		t.Fatal(err)
	}
}

func TestEventsPrintsHistoryWithSecretsRedacted(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir, "inst-ev-1")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"events", "--data-dir", dir, "inst-ev-1"}, &out, &errOut); code != 0 {
		t.Fatalf("events exited %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var types []string
	var lastSeq float64
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		types = append(types, m["type"].(string))
		if seq := m["seq"].(float64); seq <= lastSeq {
			t.Fatalf("sequences not increasing: %v after %v", seq, lastSeq)
		} else {
			lastSeq = seq
		}
	}
	if got := strings.Join(types, ","); got != "InstanceCreated,InstanceProvisioned,InstanceFrozen" {
		t.Fatalf("types = %s", got)
	}
	if strings.Contains(out.String(), "S3cret-Pass!") || !strings.Contains(out.String(), "[redacted]") {
		t.Fatalf("password not redacted:\n%s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"events", "--data-dir", dir, "--show-secrets", "inst-ev-1"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "S3cret-Pass!") {
		t.Fatalf("--show-secrets: code %d, output %s", code, out.String())
	}
	// Unknown instance and missing argument are errors naming the problem.
	errOut.Reset()
	if code := run(context.Background(), []string{"events", "--data-dir", dir, "nope"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `no events for instance "nope"`) {
		t.Fatalf("unknown instance: code %d, stderr %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"events", "--data-dir", dir}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "exactly one instanceId") {
		t.Fatalf("no argument: code %d, stderr %s", code, errOut.String())
	}
}
