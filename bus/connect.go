package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection defaults for [Connect].
const (
	connectReconnectWait = time.Second
	connectPingInterval  = 20 * time.Second
	connectRetryMin      = 250 * time.Millisecond
	connectRetryMax      = 5 * time.Second
)

// Connect dials an external NATS server or cluster. urls is one URL or a
// comma-separated list (nats://user:pass@host:4222,...). name identifies
// the client in the server's monitoring.
//
// Once connected the connection reconnects forever and logs disconnects,
// reconnects, lame-duck notices, discovered servers and asynchronous errors.
// The initial connection is retried (with capped backoff) until ctx is
// done, so a service can start before its NATS cluster is reachable; give
// ctx a deadline to bound that. A nil log discards the connection's log.
func Connect(ctx context.Context, urls string, name string, log *slog.Logger) (*nats.Conn, error) {
	if strings.TrimSpace(urls) == "" {
		return nil, fmt.Errorf("%w: no NATS URL", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nats", "client", name)
	redacted := redactURLs(urls)

	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(connectReconnectWait),
		nats.PingInterval(connectPingInterval),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "server", nc.ConnectedUrlRedacted(), "err", err)
				return
			}
			log.Info("nats disconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted(), "reconnects", nc.Reconnects)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", "err", err)
				return
			}
			log.Info("nats connection closed")
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Warn("nats server entered lame duck mode", "server", nc.ConnectedUrlRedacted())
		}),
		nats.DiscoveredServersHandler(func(nc *nats.Conn) {
			log.Debug("nats discovered servers", "servers", nc.DiscoveredServers())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats async error", "err", err)
		}),
	}

	wait := connectRetryMin
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(urls, opts...)
		if err == nil {
			log.Info("nats connected", "server", nc.ConnectedUrlRedacted(), "server_version", nc.ConnectedServerVersion())
			return nc, nil
		}
		log.Warn("nats connect failed, retrying", "urls", redacted, "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("bus: connect to %s: %w (last error: %w)", redacted, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, connectRetryMax)
	}
}

// redactURLs hides passwords and tokens (a user part without password is a
// token in NATS URLs) in a comma-separated URL list for logging.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
