package transport

import (
	"fmt"
	"os"
)

// Mode selects which code makes the direct requests of a Transport.
type Mode string

const (
	// ModeSync: the Transport makes them itself, in the goroutine of the request, over connections
	// that batch their TLS writes. The default.
	ModeSync Mode = "sync"
	// ModeStd: net/http's Transport makes every request, over its own TLS connections. It is the
	// way out should the sync transport misbehave with some server or network.
	ModeStd Mode = "std"
)

// ModeEnv is the environment variable that selects the mode when the caller does not.
const ModeEnv = "KINESIS_STREAMS_GO_HTTP_TRANSPORT"

// SelectMode returns the mode named by name, or, when name is "", by the environment variable
// ModeEnv; ModeSync when both are empty.
func SelectMode(name string) (Mode, error) {
	what := "HTTP transport"
	if name == "" {
		name, what = os.Getenv(ModeEnv), ModeEnv+" value"
	}
	switch Mode(name) {
	case "", ModeSync:
		return ModeSync, nil
	case ModeStd:
		return ModeStd, nil
	}
	return "", fmt.Errorf("transport: invalid %s %q: want %s or %s", what, name, ModeSync, ModeStd)
}

// Option configures a Transport.
type Option func(*Transport)

// WithMode selects the mode of the Transport; without it, New uses ModeSync.
func WithMode(m Mode) Option {
	return func(t *Transport) { t.stdOnly = m == ModeStd }
}

// Mode returns the mode of t.
func (t *Transport) Mode() Mode {
	if t.stdOnly {
		return ModeStd
	}
	return ModeSync
}
