package esdb

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gallerist/gallerist/bus/eventstore"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{URL: "esdb://localhost:2113?tls=false"}.withDefaults()
	if c.Prefix != "gallerist" || c.ReadBatch != 256 || c.RequestTimeout != 5*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
	if err := (Config{URL: "esdb://localhost:2113?tls=false"}).Validate(); err != nil {
		t.Fatalf("Validate of the minimal config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	const u = "esdb://localhost:2113?tls=false"
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"insecure single node", Config{URL: u}, true},
		{"secure with credentials", Config{URL: "esdb://admin:changeit@localhost:2113?tlsVerifyCert=false"}, true},
		{"dns discovery", Config{URL: "esdb+discover://cluster.example.com:2113"}, true},
		{"gossip seeds", Config{URL: "esdb://a:2113,b:2113,c:2113?tls=false&nodePreference=leader"}, true},
		{"settings any case", Config{URL: "esdb://localhost:2113?TLS=false&MaxDiscoverAttempts=3&discoveryInterval=50"}, true},
		{"all fields", Config{URL: u, Prefix: "acme.prod_1", ReadBatch: MaxReadBatch, RequestTimeout: time.Minute}, true},
		{"empty URL", Config{}, false},
		{"nats URL", Config{URL: "nats://localhost:4222"}, false},
		{"no host", Config{URL: "esdb://?tls=false"}, false},
		{"path", Config{URL: "esdb://localhost:2113/db?tls=false"}, false},
		{"typo in a setting", Config{URL: "esdb://localhost:2113?tsl=false"}, false},
		{"bad bool", Config{URL: "esdb://localhost:2113?tls=maybe"}, false},
		{"bad node preference", Config{URL: "esdb://localhost:2113?nodePreference=fastest"}, false},
		{"bad port", Config{URL: "esdb://localhost:99999?tls=false"}, false},
		{"prefix with dash", Config{URL: u, Prefix: "gal-lerist"}, false},
		{"prefix empty token", Config{URL: u, Prefix: "a..b"}, false},
		{"prefix system", Config{URL: u, Prefix: "$all"}, false},
		{"negative batch", Config{URL: u, ReadBatch: -1}, false},
		{"batch too large", Config{URL: u, ReadBatch: MaxReadBatch + 1}, false},
		{"negative timeout", Config{URL: u, RequestTimeout: -time.Second}, false},
	} {
		err := tc.cfg.Validate()
		if tc.ok && err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, eventstore.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}

// TestConfigErrorsHidePassword: connection strings may carry a password;
// errors must not repeat it.
func TestConfigErrorsHidePassword(t *testing.T) {
	for _, raw := range []string{
		"esdb://admin:s3cret@localhost:2113?tls=maybe",
		"esdb://admin:s3cret@[::1?tls=false", // url.Parse fails and quotes the URL
		"esdb://admin:s3cret@localhost:2113?bogus=1",
		"esdb://admin:s3cret@localhost:2113/path",
		"http://admin:s3cret@localhost:2113",
	} {
		err := Config{URL: raw}.Validate()
		if err == nil {
			t.Errorf("Validate(%q) passed", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Validate error reveals the password: %v", err)
		}
	}
}
