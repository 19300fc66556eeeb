// Package flbproc runs a real Fluent Bit binary for the tests: one process
// in its own process group, its stdout and stderr kept in files, signals,
// bounded waits, its threads and resident memory read from /proc, and its
// HTTP server's reload counter and metrics. It is test support only: it
// knows nothing about the plugin or its configuration.
package flbproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say how to start Fluent Bit.
type Options struct {
	// Bin is the fluent-bit binary.
	Bin string
	// Args follow the binary: -c, -e, --dry-run...
	Args []string
	// Dir is the working directory.
	Dir string
	// LogDir is where stdout and stderr are written (fluent-bit.stdout,
	// fluent-bit.stderr); Dir when empty.
	LogDir string
	// Env is the whole environment of the process.
	Env []string
}

// Process is a running (or ended) Fluent Bit.
type Process struct {
	cmd        *exec.Cmd
	stdoutPath string
	stderrPath string
	exited     chan struct{}
	files      []*os.File

	mu    sync.Mutex
	state *os.ProcessState
}

// Start starts Fluent Bit in its own process group.
func Start(o Options) (*Process, error) {
	logDir := o.LogDir
	if logDir == "" {
		logDir = o.Dir
	}
	p := &Process{
		stdoutPath: filepath.Join(logDir, "fluent-bit.stdout"),
		stderrPath: filepath.Join(logDir, "fluent-bit.stderr"),
		exited:     make(chan struct{}),
	}
	stdout, err := os.OpenFile(p.stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	stderr, err := os.OpenFile(p.stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	p.files = []*os.File{stdout, stderr}
	cmd := exec.Command(o.Bin, o.Args...)
	cmd.Dir = o.Dir
	cmd.Env = o.Env
	cmd.Stdin = nil
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.closeFiles()
		return nil, fmt.Errorf("flbproc: start %s: %w", o.Bin, err)
	}
	p.cmd = cmd
	go func() {
		_ = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		p.closeFiles()
		close(p.exited)
	}()
	return p, nil
}

func (p *Process) closeFiles() {
	for _, f := range p.files {
		_ = f.Close()
	}
}

// PID is the process id (and its process group's).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// State is the process's end state, nil while it runs.
func (p *Process) State() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("flbproc: pid %d has exited (%v)", p.PID(), p.State())
	default:
	}
	return syscall.Kill(p.PID(), sig)
}

// Wait waits at most timeout for the process to end and returns its state.
func (p *Process) Wait(timeout time.Duration) (*os.ProcessState, error) {
	select {
	case <-p.exited:
		return p.State(), nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("flbproc: pid %d still running after %v", p.PID(), timeout)
	}
}

// Stop sends SIGTERM and waits at most timeout for the process to end, as
// Fluent Bit does within its Grace; it returns the end state, or an error
// when it had to kill the group.
func (p *Process) Stop(timeout time.Duration) (*os.ProcessState, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return p.State(), nil // already ended
	}
	st, err := p.Wait(timeout)
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("flbproc: pid %d did not stop within %v after SIGTERM: killed", p.PID(), timeout)
	}
	return st, nil
}

// Kill kills the whole process group and waits (bounded) for the process.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// Stdout returns what the process wrote to stdout so far.
func (p *Process) Stdout() string { return readFile(p.stdoutPath) }

// Stderr returns what the process wrote to stderr so far.
func (p *Process) Stderr() string { return readFile(p.stderrPath) }

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// Threads counts the process's threads (/proc/PID/task).
func (p *Process) Threads() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.PID()))
	if err != nil {
		return 0, fmt.Errorf("flbproc: threads: %w", err)
	}
	return len(ents), nil
}

// RSS is the process's resident set in bytes (VmRSS in /proc/PID/status).
func (p *Process) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, fmt.Errorf("flbproc: rss: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("flbproc: rss: VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("flbproc: rss: no VmRSS line")
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("flbproc: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// httpTimeout bounds each request to Fluent Bit's HTTP server.
const httpTimeout = 5 * time.Second

var httpClient = &http.Client{Timeout: httpTimeout}

// Get fetches path (e.g. /api/v1/health) from Fluent Bit's HTTP server on
// 127.0.0.1:port.
func Get(ctx context.Context, port int, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("flbproc: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("flbproc: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("flbproc: GET %s: status %d: %q", path, resp.StatusCode, b)
	}
	return b, nil
}

// ReloadCount is the number of hot reloads Fluent Bit has completed, from
// GET /api/v2/reload.
func ReloadCount(ctx context.Context, port int) (int, error) {
	b, err := Get(ctx, port, "/api/v2/reload")
	if err != nil {
		return 0, err
	}
	var v struct {
		Count *int `json:"hot_reload_count"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Count == nil {
		return 0, fmt.Errorf("flbproc: /api/v2/reload answered %q (%v)", b, err)
	}
	return *v.Count, nil
}
