// Package flbhost builds and runs test/host/host.c, a C program that loads
// the plugin library with dlopen and drives it through Fluent Bit's Go proxy
// ABI: Register, Init per instance, FlushCtx from several threads at once,
// ExitCtx (or Exit), Unregister. It is test support only.
//
// The host can be built for another architecture and run in an emulator, to drive a library built
// for that architecture: the environment variable E2E_CC names the C compiler (gcc when unset),
// and E2E_EXEC a command, split on spaces, that runs the host with its arguments (for linux/arm64
// on amd64: "qemu-aarch64 -L /usr/aarch64-linux-gnu").
package flbhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FLB return codes, as Fluent Bit defines them.
const (
	FLBError = 0
	FLBOK    = 1
	FLBRetry = 2
)

// Build compiles the host source src into dir and returns the binary's path.
func Build(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "host")
	cc := os.Getenv("E2E_CC")
	if cc == "" {
		cc = "gcc"
	}
	cmd := exec.CommandContext(ctx, cc, "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra",
		"-o", bin, src, "-ldl", "-lpthread")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("flbhost: %s %s: %w\n%s", cc, src, err, out)
	}
	return bin, nil
}

// Prop is one property of an [OUTPUT] instance: key, value.
type Prop [2]string

// Instance is one [OUTPUT] instance: its properties, in order.
type Instance []Prop

// Job is one FlushCtx call.
type Job struct {
	Instance int
	Thread   int // jobs of one thread run in order; threads run concurrently
	Tag      string
	Chunk    []byte
	// Path, when set, is a file holding the chunk, used instead of Chunk:
	// jobs that flush the same bytes can share one file.
	Path string
}

// ExitMode selects how the host ends the instances.
type ExitMode string

// Exit modes (see host.c).
const (
	ExitCtx    ExitMode = "ctx"    // FLBPluginExitCtx(ctx) per instance
	ExitNull   ExitMode = "null"   // one FLBPluginExitCtx(NULL), as fluent-bit --dry-run
	ExitPlugin ExitMode = "plugin" // FLBPluginExit() per instance
	ExitNone   ExitMode = "none"
)

// Reflush makes the host flush again, as Fluent Bit's retries do, every job
// that returned FLB_RETRY: the same bytes in a fresh buffer, Delay later,
// after the thread's other pending jobs, at most Max more times.
type Reflush struct {
	Max   int
	Delay time.Duration
}

// Manifest is what one host run does.
type Manifest struct {
	SO        string // the plugin library
	Name      string // the name it must register
	Instances []Instance
	Jobs      []Job
	Reflush   Reflush // no flush again when Max is 0
	// Gap is how long each flush thread sleeps after every flush, as Fluent Bit's worker waits
	// for its next chunk; 0 flushes back to back.
	Gap  time.Duration
	Exit ExitMode // ExitCtx when empty
}

// Init is the outcome of one FLBPluginInit.
type Init struct {
	RC  int
	Ctx string // remote_context after Init: "null" or a pointer
}

// Flush is the outcome of a job: its first FlushCtx call, and the calls
// that flushed it again (Manifest.Reflush).
type Flush struct {
	RC       int // the last call's return code; -1 when the host did not report it
	Duration time.Duration
	RCs      []int         // every call's return code, the first one first
	Total    time.Duration // the time spent in all the calls
}

// Usage is the host's "usage flush" line: the process's CPU time over the
// flush phase (from just before the flush threads start to just after they
// join), the part of it the host spent on its own work (reading and wiping
// chunks), and ru_maxrss, which Linux carries across exec: it includes the
// peak of the process that started the host. Use Result.RSS for the host's own.
type Usage struct {
	User, Sys time.Duration
	Host      time.Duration // the host's own work, included in User+Sys
	MaxRSSKB  int64
	// Switches is the voluntary context switches of the flush phase, every thread's but the
	// host's resident-set sampler's: one per thread that sleeps and wakes up again (one per Gap
	// included).
	Switches int64
}

// RSS is the resident set sizes the host printed, in KiB.
type RSS struct {
	Start, Init int64
	Peak        int64   // the peak while flush threads ran, sampled every 2 ms
	PeakAfter   int     // how many flushes had ended when the peak was seen
	AfterFlush  []int64 // by job index
	Order       []int   // job indexes in the order their flushes ended
}

// Result is what a host run printed and how it ended.
type Result struct {
	Registered string // the registered name, "" if Register did not run
	Inits      []Init
	Flushes    []Flush // by job index
	Exits      []int   // the exit calls' return codes, in order
	Usage      *Usage  // nil when the host ran no flush threads
	// RSS is the host's resident set in KiB: Start before it loaded the library (the host
	// alone), Init after every Init, and AfterFlush[J] after the first flush of job J, in the
	// order the flushes ended (0 until printed).
	RSS    RSS
	Done   bool // the host ran to its end
	Stdout string
	Stderr string
	Err    error // how the process ended: nil for exit status 0
	// Rusage is the whole process's resource usage (start-up and exit
	// included), nil if unavailable.
	Rusage *syscall.Rusage
}

// Run writes m (manifest and chunk files) under dir and runs the host bin on
// it with env as its whole environment, killing it when ctx ends. The
// returned error is for problems of the harness; how the host ended is in
// Result.Err.
func Run(ctx context.Context, bin, dir string, m Manifest, env []string) (*Result, error) {
	var mf strings.Builder
	fmt.Fprintf(&mf, "so %s\n", m.SO)
	if m.Name != "" {
		fmt.Fprintf(&mf, "name %s\n", m.Name)
	}
	for i, ins := range m.Instances {
		fmt.Fprintf(&mf, "# instance %d\ninstance\n", i)
		for _, p := range ins {
			key, value := p[0], p[1]
			if key == "" || strings.ContainsAny(key, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
				return nil, fmt.Errorf("flbhost: property %q=%q cannot be written to a manifest", key, value)
			}
			fmt.Fprintf(&mf, "prop %s %s\n", key, value)
		}
	}
	for i, j := range m.Jobs {
		if j.Tag == "" || strings.ContainsAny(j.Tag, " \t\r\n") {
			return nil, fmt.Errorf("flbhost: job %d: bad tag %q", i, j.Tag)
		}
		path := j.Path
		if path == "" {
			path = filepath.Join(dir, fmt.Sprintf("chunk-%04d.bin", i))
			if err := os.WriteFile(path, j.Chunk, 0o600); err != nil {
				return nil, err
			}
		} else if strings.ContainsAny(path, "\r\n") {
			return nil, fmt.Errorf("flbhost: job %d: bad path %q", i, path)
		}
		fmt.Fprintf(&mf, "flush %d %d %s %s\n", j.Instance, j.Thread, j.Tag, path)
	}
	if m.Gap > 0 {
		fmt.Fprintf(&mf, "gap %d\n", m.Gap.Milliseconds())
	}
	if m.Reflush.Max > 0 {
		fmt.Fprintf(&mf, "reflush %d %d\n", m.Reflush.Max, m.Reflush.Delay.Milliseconds())
	}
	exit := m.Exit
	if exit == "" {
		exit = ExitCtx
	}
	fmt.Fprintf(&mf, "exit %s\n", exit)
	manifest := filepath.Join(dir, "manifest.txt")
	if err := os.WriteFile(manifest, []byte(mf.String()), 0o600); err != nil {
		return nil, err
	}

	var stdout, stderr bytes.Buffer
	args := append(strings.Fields(os.Getenv("E2E_EXEC")), bin, manifest)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if runErr != nil && !errors.As(runErr, new(*exec.ExitError)) && ctx.Err() == nil {
		return nil, fmt.Errorf("flbhost: run %s: %w", bin, runErr)
	}
	if ctx.Err() != nil {
		runErr = fmt.Errorf("host killed: %w (%v)", ctx.Err(), runErr)
	}
	r := &Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: runErr}
	if cmd.ProcessState != nil {
		r.Rusage, _ = cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	r.Flushes = make([]Flush, len(m.Jobs))
	for i := range r.Flushes {
		r.Flushes[i].RC = -1
	}
	if err := r.parse(); err != nil {
		return r, err
	}
	return r, nil
}

var (
	reRegister = regexp.MustCompile(`^register rc=-?\d+ type=\d+ proxy=\d+ name=(.*)$`)
	reInit     = regexp.MustCompile(`^init (\d+) rc=(-?\d+) ctx=(\S+)$`)
	reFlush    = regexp.MustCompile(`^flush (\d+) rc=(-?\d+) ms=(\d+)$`)
	reReflush  = regexp.MustCompile(`^reflush (\d+) try=(\d+) rc=(-?\d+) ms=(\d+)$`)
	reExit     = regexp.MustCompile(`^exit(?:ctx)? (?:\d+|null) rc=(-?\d+)$`)
	reRSS      = regexp.MustCompile(`^rss (\d+|start|init|peak) kb=(\d+)(?: after=(\d+))?$`)
	reUsage    = regexp.MustCompile(`^usage flush user_us=(\d+) sys_us=(\d+) host_us=(\d+) maxrss_kb=(\d+) csw=(-?\d+)$`)
)

func (r *Result) parse() error {
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	for sc.Scan() {
		line := sc.Text()
		if m := reRegister.FindStringSubmatch(line); m != nil {
			r.Registered = m[1]
		} else if m := reInit.FindStringSubmatch(line); m != nil {
			rc, _ := strconv.Atoi(m[2])
			r.Inits = append(r.Inits, Init{RC: rc, Ctx: m[3]})
		} else if m := reFlush.FindStringSubmatch(line); m != nil {
			j, _ := strconv.Atoi(m[1])
			rc, _ := strconv.Atoi(m[2])
			ms, _ := strconv.Atoi(m[3])
			if j >= len(r.Flushes) || r.Flushes[j].RC != -1 {
				return fmt.Errorf("flbhost: unexpected line %q", line)
			}
			d := time.Duration(ms) * time.Millisecond
			r.Flushes[j] = Flush{RC: rc, Duration: d, RCs: []int{rc}, Total: d}
		} else if m := reReflush.FindStringSubmatch(line); m != nil {
			j, _ := strconv.Atoi(m[1])
			try, _ := strconv.Atoi(m[2])
			rc, _ := strconv.Atoi(m[3])
			ms, _ := strconv.Atoi(m[4])
			if j >= len(r.Flushes) || len(r.Flushes[j].RCs) != try {
				return fmt.Errorf("flbhost: unexpected line %q", line)
			}
			f := &r.Flushes[j]
			f.RC = rc
			f.RCs = append(f.RCs, rc)
			f.Total += time.Duration(ms) * time.Millisecond
		} else if m := reExit.FindStringSubmatch(line); m != nil {
			rc, _ := strconv.Atoi(m[1])
			r.Exits = append(r.Exits, rc)
		} else if m := reRSS.FindStringSubmatch(line); m != nil {
			kb, _ := strconv.ParseInt(m[2], 10, 64)
			switch m[1] {
			case "start":
				r.RSS.Start = kb
			case "init":
				r.RSS.Init = kb
			case "peak":
				r.RSS.Peak = kb
				r.RSS.PeakAfter, _ = strconv.Atoi(m[3])
			default:
				j, _ := strconv.Atoi(m[1])
				if j >= len(r.Flushes) {
					return fmt.Errorf("flbhost: unexpected line %q", line)
				}
				if r.RSS.AfterFlush == nil {
					r.RSS.AfterFlush = make([]int64, len(r.Flushes))
				}
				r.RSS.AfterFlush[j] = kb
				r.RSS.Order = append(r.RSS.Order, j)
			}
		} else if m := reUsage.FindStringSubmatch(line); m != nil {
			var v [5]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
			}
			r.Usage = &Usage{User: time.Duration(v[0]) * time.Microsecond, Sys: time.Duration(v[1]) * time.Microsecond,
				Host: time.Duration(v[2]) * time.Microsecond, MaxRSSKB: v[3], Switches: v[4]}
		} else if line == "done" {
			r.Done = true
		} else if line != "unregister" {
			return fmt.Errorf("flbhost: unexpected line %q", line)
		}
	}
	return sc.Err()
}
