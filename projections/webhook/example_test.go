package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/gallerist/gallerist/projections/webhook"
)

// receiver is what a vendor runs: verify the signature over the raw body
// first, then parse, then deduplicate on the idempotency key (deliveries
// are at least once), then act and answer 2xx.
func receiver(secret []byte) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized) // a 4xx: Gallerist parks the event
			return
		}
		var n webhook.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		key := r.Header.Get(webhook.HeaderIdempotencyKey)
		mu.Lock()
		dup := seen[key]
		seen[key] = true
		mu.Unlock()
		if dup {
			fmt.Printf("duplicate %s ignored\n", n.EventType)
			w.WriteHeader(http.StatusOK)
			return
		}
		fmt.Printf("%s for instance %s (order %s)\n", n.EventType, n.InstanceID, n.Causation.OrderID)
		// ... freeze the tenant here; answer 5xx to have it retried ...
		w.WriteHeader(http.StatusNoContent)
	})
}

// A vendor's receiver of Gallerist's webhook, and the request Gallerist
// sends to it.
func ExampleVerify() {
	secret := []byte("a-vendor-secret-of-32-bytes-----")
	srv := httptest.NewServer(receiver(secret))
	defer srv.Close()

	body := []byte(`{"eventId":"0197a1b2-0000-7000-8000-000000000001","eventType":"InstanceFrozen","sequence":42,` +
		`"occurredAt":"2025-01-02T03:04:05Z","instanceId":"i-1","route":"/koogallery/demo","data":{},` +
		`"causation":{"activity":"updateInstanceStatus","orderId":"CS250102","route":"/koogallery/demo"}}`)
	send := func(b []byte, signature string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.HeaderIdempotencyKey, "0197a1b2-0000-7000-8000-000000000001")
		req.Header.Set(webhook.HeaderSignature, signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sig := webhook.Sign(secret, body)
	fmt.Println(send(body, sig))
	fmt.Println(send(body, sig)) // a retry of the same event
	tampered := bytes.Replace(body, []byte("i-1"), []byte("i-2"), 1)
	fmt.Println(send(tampered, sig))
	// Output:
	// InstanceFrozen for instance i-1 (order CS250102)
	// 204
	// duplicate InstanceFrozen ignored
	// 200
	// 401
}
