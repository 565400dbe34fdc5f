package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// serverLogger adapts nats-server's Logger interface to slog. nats-server
// reports unrecoverable start-up problems (listen failure, JetStream cannot
// start) through Fatalf and then carries on or returns; the adapter records
// the first fatal message so StartEmbedded can fail instead of waiting.
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal string
	fired chan struct{} // closed on the first Fatalf
}

func newServerLogger(log *slog.Logger) *serverLogger {
	return &serverLogger{log: log, fired: make(chan struct{})}
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }

// Fatalf logs at error level and records the message; unlike nats-server's
// own logger it never exits the process.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == "" {
		l.fatal = msg
		close(l.fired)
	}
}

// fatalMessage returns the first Fatalf message, "" if none.
func (l *serverLogger) fatalMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
