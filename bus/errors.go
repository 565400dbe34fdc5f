package bus

import "errors"

var (
	// ErrInvalidConfig is wrapped by every configuration validation error.
	ErrInvalidConfig = errors.New("bus: invalid config")
	// ErrStart is wrapped when the embedded server fails to start or to
	// become ready (listener, JetStream or store recovery failure).
	ErrStart = errors.New("bus: embedded server failed to start")
	// ErrDataDirInUse is wrapped (with ErrStart) when another embedded
	// server, in this process or another, holds the data directory's lock:
	// two servers on one JetStream store would corrupt it.
	ErrDataDirInUse = errors.New("bus: data directory is in use by another embedded server")
	// ErrShutdown is returned by [Embedded.Connect] after [Embedded.Shutdown].
	ErrShutdown = errors.New("bus: embedded server is shut down")
)
