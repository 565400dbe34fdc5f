package esdb

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	esdbc "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/gallerist/gallerist/bus/eventstore"
)

// Defaults of [Config]; a zero field takes its default.
const (
	// DefaultPrefix is the first part of every stream name, the same as
	// the JetStream subject prefix.
	DefaultPrefix = eventstore.DefaultPrefix
	// DefaultReadBatch is how many events one read request asks for.
	DefaultReadBatch = 256
	// DefaultRequestTimeout bounds a store call whose context has no
	// deadline (the JetStream store's default).
	DefaultRequestTimeout = 5 * time.Second
	// MaxReadBatch bounds ReadBatch.
	MaxReadBatch = 4096
)

// Config configures [Open]. Zero values take the documented defaults.
type Config struct {
	// URL is the EventStoreDB (KurrentDB) connection string, required, e.g.
	// "esdb://localhost:2113?tls=false" for an insecure single node,
	// "esdb://admin:changeit@host:2113?tlsCAFile=ca.crt" or
	// "esdb+discover://cluster.example:2113" (see the client's
	// ParseConnectionString). It may carry credentials: it is never logged
	// and error messages never quote it.
	URL string
	// Prefix is the first part of every stream name ("<Prefix>.<kind>-…",
	// see [StreamName]); default "gallerist". Dot-separated tokens of
	// [A-Za-z0-9_], no '-'.
	Prefix string
	// ReadBatch is how many events one read request of Load asks for;
	// default 256, at most 4096.
	ReadBatch int
	// RequestTimeout bounds a call whose context has no deadline; default
	// 5s.
	RequestTimeout time.Duration
	// Logger receives the store's and the client library's log; nil
	// discards it.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.ReadBatch == 0 {
		c.ReadBatch = DefaultReadBatch
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// Validate reports whether c (with defaults applied) is usable, including
// whether URL parses as a connection string. Errors wrap
// [eventstore.ErrInvalidConfig] and never quote the URL.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.URL == "" {
		return fmt.Errorf("%w: esdb: empty URL (want e.g. esdb://localhost:2113?tls=false)", eventstore.ErrInvalidConfig)
	}
	if _, err := parseURL(c.URL); err != nil {
		return err
	}
	if err := ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("%w: esdb: %w", eventstore.ErrInvalidConfig, err)
	}
	if c.ReadBatch < 1 || c.ReadBatch > MaxReadBatch {
		return fmt.Errorf("%w: esdb: ReadBatch %d not in 1..%d", eventstore.ErrInvalidConfig, c.ReadBatch, MaxReadBatch)
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("%w: esdb: RequestTimeout %s is negative", eventstore.ErrInvalidConfig, c.RequestTimeout)
	}
	return nil
}

// parseURL parses a connection string. The client library's parser logs
// unknown settings through its default console logger, so they are rejected
// here first; its errors are stripped of the URL (which may hold a
// password).
func parseURL(raw string) (*esdbc.Configuration, error) {
	u, err := url.Parse(raw)
	if err == nil {
		for k := range u.Query() {
			if !knownSetting(k) {
				return nil, fmt.Errorf("%w: esdb: connection string: unknown setting %q", eventstore.ErrInvalidConfig, k)
			}
		}
		// The library truncates a port to 16 bits (99999 becomes 34463).
		for host := range strings.SplitSeq(u.Host, ",") {
			if i := strings.LastIndexByte(host, ':'); i >= 0 {
				if p, perr := strconv.Atoi(host[i+1:]); perr != nil || p < 1 || p > 65535 {
					return nil, fmt.Errorf("%w: esdb: connection string: bad port in %q", eventstore.ErrInvalidConfig, host)
				}
			}
		}
	}
	// A multi-host URL (esdb://h1:2113,h2:2113) does not parse as a URL;
	// the client library handles it.
	conf, err := esdbc.ParseConnectionString(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: esdb: connection string: %w", eventstore.ErrInvalidConfig, err)
	}
	return conf, nil
}

// knownSetting reports whether the client library understands connection
// string setting k (case-insensitive, as in its parser).
func knownSetting(k string) bool {
	switch strings.ToLower(k) {
	case "discoveryinterval", "gossiptimeout", "maxdiscoverattempts", "nodepreference",
		"keepaliveinterval", "keepalivetimeout", "tls", "tlscafile", "usercertfile",
		"userkeyfile", "tlsverifycert", "defaultdeadline":
		return true
	}
	return false
}
