// Package fluentbit runs the built plugin library inside a real Fluent Bit
// (the binary named by FLUENT_BIT) against kinesis-mock on 127.0.0.1, and
// reads every record back: classic and YAML configurations, workers, several
// instances, every example, hot reloads, SIGTERM with requests in flight, and
// filesystem buffering across a restart.
//
// Records are JSON lines with a sequence number, written to files that
// Fluent Bit's tail input reads, so that every record is checked to arrive
// exactly once and byte for byte as the plugin encodes it.
//
// Without FLUENT_BIT the tests skip, saying so. FLUENT_BIT is absolute or
// relative to the repository's root. The library must be built first
// (`make build`) and test/node_modules installed (`npm ci` in test/).
package fluentbit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

const (
	pluginName = "kinesis_streams_go"
	// repoRoot is the repository's root, relative to this package.
	repoRoot = "../.."
	// pluginSO is the library under test, relative to the repository's root.
	pluginSO = "build/kinesis_streams_go.so"
)

// Set up once by TestMain; fluentBit is empty when the tests skip.
var (
	fluentBit string // absolute path of the binary
	version   string // its version, e.g. 4.2.8
	soPath    string // absolute path of the plugin library
	rootDir   string // absolute path of the repository's root
	mock      *kinesismock.Server
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	bin := os.Getenv("FLUENT_BIT")
	if bin == "" {
		fmt.Fprintln(os.Stderr, "fluentbit: FLUENT_BIT not set: skipping the tests in real Fluent Bit")
		return m.Run()
	}
	var err error
	if rootDir, err = filepath.Abs(repoRoot); err != nil {
		fmt.Fprintln(os.Stderr, "fluentbit:", err)
		return 1
	}
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(rootDir, bin)
	}
	if fluentBit, version, err = checkBinary(bin); err != nil {
		fmt.Fprintln(os.Stderr, "fluentbit:", err)
		return 1
	}
	soPath = filepath.Join(rootDir, pluginSO)
	if _, err := os.Stat(soPath); err != nil {
		fmt.Fprintf(os.Stderr, "fluentbit: plugin library %s missing: run `make build` first (%v)\n", soPath, err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	mock, err = kinesismock.Start(ctx, "..", nil)
	if err != nil {
		if errors.Is(err, kinesismock.ErrNotInstalled) {
			fmt.Fprintln(os.Stderr, "fluentbit: node and test/node_modules are needed: run `npm ci` in test/:", err)
		} else {
			fmt.Fprintln(os.Stderr, "fluentbit:", err)
		}
		return 1
	}
	defer func() {
		if err := mock.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "fluentbit:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "fluentbit: Fluent Bit %s (%s), kinesis-mock ready at %s in %v\n",
		version, fluentBit, mock.Endpoint, time.Since(start).Round(time.Millisecond))
	return m.Run()
}

var versionLine = regexp.MustCompile(`Fluent Bit v(\d+\.\d+\.\d+)`)

// checkBinary returns the absolute path of the fluent-bit binary bin and its
// version, from `bin --version`.
func checkBinary(bin string) (string, string, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", "", fmt.Errorf("FLUENT_BIT %q: %w", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, abs, "--version").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("FLUENT_BIT %q --version: %w\n%s", abs, err, out)
	}
	v := versionLine.FindSubmatch(out)
	if v == nil {
		return "", "", fmt.Errorf("FLUENT_BIT %q --version printed no version: %q", abs, out)
	}
	return abs, string(v[1]), nil
}

// needFluentBit skips the test when FLUENT_BIT is not set, and marks it
// parallel otherwise.
func needFluentBit(t *testing.T) {
	t.Helper()
	if fluentBit == "" {
		t.Skip("FLUENT_BIT not set: skipping the test in real Fluent Bit")
	}
	t.Parallel()
}
