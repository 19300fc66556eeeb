// Package kinesismock runs kinesis-mock (the npm package kinesis-local) on
// 127.0.0.1 for the end-to-end tests, creates streams on it and reads every
// record back. It is test support only: nothing outside test/ imports it.
//
// The server is a node process in its own process group, started with the
// test/loopback.js preload so that it listens on the loopback address only.
// It is killed with its group by Close, and it exits by itself when the test
// binary dies (the preload watches its stdin, which this package holds open).
package kinesismock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Fake credentials: the server accepts any signature. Never real AWS.
const (
	AccessKeyID     = "AKIAFAKEFAKEFAKEFAKE"
	SecretAccessKey = "fake"
	Region          = "us-east-1"
)

// Bounds of every wait in this package.
const (
	startTimeout   = 30 * time.Second
	activeTimeout  = 30 * time.Second
	requestTimeout = 20 * time.Second
	stopTimeout    = 5 * time.Second
	maxReadCalls   = 10000 // GetRecords calls per shard in ReadAll
)

// ErrNotInstalled means node or the npm package is missing.
var ErrNotInstalled = errors.New("kinesismock: kinesis-local not installed: run `npm ci` in test/")

// Server is a running kinesis-mock.
type Server struct {
	// Endpoint is the plain HTTP endpoint, http://127.0.0.1:PORT.
	Endpoint string
	// TLSEndpoint is the HTTPS endpoint (self-signed certificate without a host name).
	TLSEndpoint string
	// Client talks to Endpoint with fake credentials.
	Client *kinesis.Client

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	log    *tail

	closeOnce sync.Once
	closeErr  error
}

// Start starts kinesis-mock from the npm package installed in testDir
// (testDir/node_modules/kinesis-local) with the preload testDir/loopback.js,
// and returns once it answers ListStreams. Its output is kept (the last
// 64 KiB) for Output, and copied to logw when logw is not nil.
func Start(ctx context.Context, testDir string, logw io.Writer) (*Server, error) {
	testDir, err := filepath.Abs(testDir)
	if err != nil {
		return nil, err
	}
	pkg := filepath.Join(testDir, "node_modules", "kinesis-local")
	mainJS := filepath.Join(pkg, "main.js")
	certPath := filepath.Join(pkg, "server.json")
	preload := filepath.Join(testDir, "loopback.js")
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w (node not found: %v)", ErrNotInstalled, err)
	}
	for _, f := range []string{mainJS, certPath} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrNotInstalled, err)
		}
	}
	if _, err := os.Stat(preload); err != nil {
		return nil, fmt.Errorf("kinesismock: preload missing: %w", err)
	}
	plain, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}

	s := &Server{
		Endpoint:    "http://127.0.0.1:" + strconv.Itoa(plain),
		TLSEndpoint: "https://127.0.0.1:" + strconv.Itoa(tlsPort),
		exited:      make(chan struct{}),
		log:         &tail{max: 64 << 10, copy: logw},
	}
	cmd := exec.Command(node, "-r", preload, mainJS)
	cmd.Dir = testDir
	// The server's environment: this process's, without AWS settings (the
	// machine may set AWS_CA_BUNDLE or a region), plus its own.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KINESIS_MOCK_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"KINESIS_MOCK_PLAIN_PORT="+strconv.Itoa(plain),
		"KINESIS_MOCK_TLS_PORT="+strconv.Itoa(tlsPort),
		"KINESIS_MOCK_CERT_PATH="+certPath,
		"LOG_LEVEL=WARN",
		// Every test creates its own streams, in parallel; the default 50 shards is not enough.
		"SHARD_LIMIT=1000",
		"AWS_REGION="+Region,
		"SHOULD_PERSIST_DATA=false",
		"LOAD_DATA_IF_EXISTS=false",
		"LOOPBACK_EXIT_ON_STDIN_EOF=1",
	)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.stdin, err = cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kinesismock: start node: %w", err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()

	s.Client = kinesis.New(kinesis.Options{
		Region:           Region,
		Credentials:      credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint:     aws.String(s.Endpoint),
		HTTPClient:       awshttp.NewBuildableClient().WithTimeout(requestTimeout),
		RetryMaxAttempts: 5,
	})
	if err := s.waitReady(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("%w\nkinesis-mock output:\n%s", err, s.Output())
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := s.Client.ListStreams(rctx, &kinesis.ListStreamsInput{}, func(o *kinesis.Options) {
			o.RetryMaxAttempts = 1
		})
		rcancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("kinesismock: node exited before answering (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("kinesismock: not ready after %v: %w", startTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Output returns the end of the server's output.
func (s *Server) Output() string { return s.log.String() }

// Close kills the server's process group and waits for it (bounded).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		pgid := s.cmd.Process.Pid // Setpgid: the group id is the leader's pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.closeErr = fmt.Errorf("kinesismock: node (pid %d) did not exit", pgid)
			}
		}
		_ = s.stdin.Close()
	})
	return s.closeErr
}

// CreateStream creates a provisioned stream with shards shards and waits
// until it is ACTIVE.
func (s *Server) CreateStream(ctx context.Context, name string, shards int32) error {
	ctx, cancel := context.WithTimeout(ctx, activeTimeout)
	defer cancel()
	_, err := s.Client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	})
	if err != nil {
		return fmt.Errorf("kinesismock: create stream %q: %w", name, err)
	}
	for {
		out, err := s.Client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{
			StreamName: aws.String(name),
		})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kinesismock: stream %q not active after %v (last error: %v)", name, activeTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Record is one record read back from a stream.
type Record struct {
	ShardID        string
	SequenceNumber string
	PartitionKey   string
	Data           []byte
}

// ReadAll reads every record of every shard of stream, from the trim horizon
// until the shard has nothing more (no records and MillisBehindLatest 0).
// Records come shard by shard, in sequence order within a shard.
func (s *Server) ReadAll(ctx context.Context, stream string) ([]Record, error) {
	var shards []types.Shard
	var next *string
	for {
		in := &kinesis.ListShardsInput{NextToken: next}
		if next == nil {
			in.StreamName = aws.String(stream)
		}
		out, err := s.Client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("kinesismock: list shards of %q: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		next = out.NextToken
	}
	sort.Slice(shards, func(i, j int) bool { return *shards[i].ShardId < *shards[j].ShardId })

	var recs []Record
	for _, sh := range shards {
		it, err := s.Client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(stream),
			ShardId:           sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, fmt.Errorf("kinesismock: shard iterator %q/%s: %w", stream, *sh.ShardId, err)
		}
		iter := it.ShardIterator
		done := false
		for calls := 0; iter != nil && !done; calls++ {
			if calls == maxReadCalls {
				return nil, fmt.Errorf("kinesismock: shard %q/%s not read to the end after %d GetRecords calls", stream, *sh.ShardId, maxReadCalls)
			}
			out, err := s.Client.GetRecords(ctx, &kinesis.GetRecordsInput{
				ShardIterator: iter,
				Limit:         aws.Int32(10000),
			})
			if err != nil {
				return nil, fmt.Errorf("kinesismock: get records %q/%s: %w", stream, *sh.ShardId, err)
			}
			for _, r := range out.Records {
				recs = append(recs, Record{
					ShardID:        *sh.ShardId,
					SequenceNumber: aws.ToString(r.SequenceNumber),
					PartitionKey:   aws.ToString(r.PartitionKey),
					Data:           r.Data,
				})
			}
			done = len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0
			iter = out.NextShardIterator
		}
	}
	return recs, nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kinesismock: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it, and copies them on.
type tail struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	copy io.Writer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	if t.copy != nil {
		_, _ = t.copy.Write(p)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
