package openapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment variables that conventionally carry the AK/SK (the command
// line reads them; this package does not touch the environment).
const (
	EnvAK = "GALLERIST_KG_AK"
	EnvSK = "GALLERIST_KG_SK"
)

// DefaultTimeout bounds one attempt on one host when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// ErrInvalidConfig wraps configuration validation errors.
var ErrInvalidConfig = errors.New("openapi: invalid config")

// Config configures a Client.
type Config struct {
	// Site selects the documented default hosts (DefaultHosts).
	Site Site
	// Hosts overrides the hosts of every API: ordered, the first is the
	// primary. "https://host[:port]" or a bare "host[:port]" (HTTPS is
	// implied); no path, query or user info.
	Hosts []string
	// APIHosts overrides the hosts of single APIs (outgoing.md §1: "for each
	// API the host and an ordered fallback list are configurable"); it
	// takes precedence over Hosts.
	APIHosts map[API][]string
	// AK is the account's access key ID.
	AK string
	// SK is the account's secret access key. Secret: never logged; String,
	// GoString and LogValue redact it.
	SK string
	// Timeout bounds one attempt on one host (connect, TLS, request and
	// reading the answer); 0 means DefaultTimeout. The caller's context
	// bounds the whole call across hosts.
	Timeout time.Duration
	// HTTPClient sends the requests; nil means a client with strict TLS
	// (TLS ≥ 1.2, system roots). A client whose transport skips certificate
	// verification is rejected. Redirects are never followed.
	HTTPClient *http.Client
}

const redacted = "[REDACTED]"

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if !c.Site.Valid() {
		errs = append(errs, fmt.Errorf("site %q is not one of mainland, international, eu", c.Site))
	}
	if strings.TrimSpace(c.AK) == "" {
		errs = append(errs, fmt.Errorf("AK is required (env %s)", EnvAK))
	}
	if strings.TrimSpace(c.SK) == "" {
		errs = append(errs, fmt.Errorf("SK is required (env %s)", EnvSK))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	for _, h := range c.Hosts {
		if _, err := parseHost(h); err != nil {
			errs = append(errs, err)
		}
	}
	for api, hosts := range c.APIHosts {
		if len(hosts) == 0 {
			errs = append(errs, fmt.Errorf("APIHosts[%s] is empty", api))
		}
		for _, h := range hosts {
			if _, err := parseHost(h); err != nil {
				errs = append(errs, fmt.Errorf("APIHosts[%s]: %w", api, err))
			}
		}
	}
	if c.HTTPClient != nil {
		if t, ok := c.HTTPClient.Transport.(*http.Transport); ok && t.TLSClientConfig != nil && t.TLSClientConfig.InsecureSkipVerify {
			errs = append(errs, errors.New("HTTPClient skips TLS certificate verification; KooGallery's certificate must be verified strictly"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// hosts returns the configured or documented hosts of api, parsed.
func (c Config) hosts(api API) ([]*url.URL, error) {
	raw := c.APIHosts[api]
	if len(raw) == 0 {
		raw = c.Hosts
	}
	if len(raw) == 0 {
		raw = DefaultHosts(c.Site, api)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no host for %s on site %q", ErrInvalidConfig, api, c.Site)
	}
	out := make([]*url.URL, 0, len(raw))
	for _, h := range raw {
		u, err := parseHost(h)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// parseHost reads "https://host[:port]" or "host[:port]"; the default port
// 443 is dropped, so that the signed Host is the bare host name.
func parseHost(h string) (*url.URL, error) {
	s := strings.TrimSpace(h)
	if s == "" {
		return nil, errors.New("empty host")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("host %q: %w", h, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("host %q: only https is allowed", h)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("host %q: no host name", h)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("host %q: want scheme://host[:port] only", h)
	}
	if u.Port() == "443" {
		u.Host = u.Hostname()
		if strings.Contains(u.Host, ":") { // IPv6 literal
			u.Host = "[" + u.Host + "]"
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// String describes the configuration with the SK redacted.
func (c Config) String() string {
	sk := ""
	if c.SK != "" {
		sk = redacted
	}
	return fmt.Sprintf("openapi.Config{Site:%s Hosts:%v APIHosts:%v AK:%s SK:%s Timeout:%s}",
		c.Site, c.Hosts, c.APIHosts, c.AK, sk, c.Timeout)
}

// GoString is String, so that %#v redacts the SK too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the SK redacted.
func (c Config) LogValue() slog.Value {
	sk := ""
	if c.SK != "" {
		sk = redacted
	}
	return slog.GroupValue(
		slog.String("site", string(c.Site)),
		slog.Any("hosts", c.Hosts),
		slog.Any("apiHosts", c.APIHosts),
		slog.String("ak", c.AK),
		slog.String("sk", sk),
		slog.Duration("timeout", c.Timeout),
	)
}
