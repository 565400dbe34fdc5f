package app

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gallerist/gallerist/projections/views"
)

// The read models follow the log while the service runs: an instance
// created over HTTP shows up in the SQL view, provisioned and then frozen.
func TestViewsFollowTheLog(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	id := r.kg.create(t)
	r.kg.must(t, map[string]any{"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		inst, seq, err := r.Views().GetInstance(t.Context(), id)
		if err == nil && inst.Status == "frozen" && inst.ProvisionedAt != nil {
			if seq == 0 || inst.LastEventSeq > seq {
				t.Fatalf("view consistent to %d but row at %d", seq, inst.LastEventSeq)
			}
			return
		}
		if err != nil && !errors.Is(err, views.ErrNotFound) {
			t.Fatalf("GetInstance: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("view never showed the frozen, provisioned instance: %+v, %v (projector error: %v)", inst, err, r.Projector().Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The query API runs on its own listener with bearer auth and answers from
// the views.
func TestQueryAPIListener(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.APIAddr, cfg.APITokens = "127.0.0.1:0", []string{"test-token-0123456789"}
	r := start(t, cfg)
	id := r.kg.create(t)
	url := "http://" + r.APIAddr() + "/v1/instances/" + id
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v, %v", resp, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer test-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Instance *struct {
				InstanceID string `json:"instanceId"`
			} `json:"instance"`
			ConsistentTo uint64 `json:"consistentTo"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && body.Instance != nil && body.Instance.InstanceID == id && body.ConsistentTo > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never answered the instance: status %d, %+v, %v", resp.StatusCode, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueryAPINeedsToken(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.APIAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err == nil {
		t.Fatal("an API without tokens was accepted")
	}
}
