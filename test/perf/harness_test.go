package perf

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
)

// The fixed input: chunks of chunkRecords records in Fluent Bit 4's format, of one of two kinds
// (PERF_INPUT):
//   - "container" (the default): container log lines as tail and the docker parser make them
//     (chunk.ContainerRecord: "log" of 300 to 340 bytes with its newline and a quoted user agent,
//     "stream", "time"; 430 bytes of msgpack and 395 of JSON each, 2.16 MB a chunk);
//   - "corpus": the fidelity corpus (chunk.LogRecord: escapes, control characters, multi-byte and
//     invalid UTF-8, nested maps, every integer width; 470 bytes of msgpack and 390 of JSON each,
//     2.35 MB a chunk), the worst case for the record path.
const (
	chunkRecords = 5000
	chunkFormat  = chunk.V2Wide
	streamName   = "bench"
	region       = "us-east-1"
	// A real Kinesis answer and the benchmarks' chunks together stay well under this.
	setupTimeout = 2 * time.Minute
)

// perfInput is PERF_INPUT, checked.
func perfInput(tb testing.TB) string {
	tb.Helper()
	switch v := os.Getenv("PERF_INPUT"); v {
	case "", "container":
		return "container"
	case "corpus":
		return v
	default:
		tb.Fatalf("PERF_INPUT=%q: want container or corpus", v)
		return ""
	}
}

// events returns the n events of input from number first on.
func events(input string, first, n int) []chunk.Event {
	if input == "corpus" {
		return chunk.LogEvents("perf", first, n, 0)
	}
	return chunk.ContainerEvents(first, n)
}

// Fake credentials: the sink does not check signatures, but the client signs every request.
const (
	accessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	secretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// envInt reads a positive integer setting from the environment, def when unset.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envInt0 reads a setting that may be 0 from the environment, def when unset.
func envInt0(tb testing.TB, name string, def int) int {
	tb.Helper()
	if os.Getenv(name) == "0" {
		return 0
	}
	return envInt(tb, name, def)
}

// buildChunks returns n distinct chunks of input: chunk i holds records i*chunkRecords onwards.
func buildChunks(input string, n int) [][]byte {
	chunks := make([][]byte, n)
	for i := range chunks {
		chunks[i] = chunk.Build(chunkFormat, events(input, i*chunkRecords, chunkRecords))
	}
	return chunks
}

// recordData returns the data the plugin sends for the records of buildChunks(input, n) with
// default settings: each record's JSON and a newline.
func recordData(input string, n int) [][]byte {
	data := make([][]byte, 0, n*chunkRecords)
	for i := range n {
		for _, ev := range events(input, i*chunkRecords, chunkRecords) {
			data = append(data, append(chunk.AppendJSON(nil, ev.Record), '\n'))
		}
	}
	return data
}

// floorPerRecord measures the work no implementation can avoid to send data to Kinesis over
// TLS in protocol (config.ProtocolJSON or config.ProtocolCBOR), per record: the body of each
// request of 500 records with random-length partition keys (in JSON, the base64 of each record's
// data; in CBOR, the data as it is, copied in), SHA-256 of the body (SigV4 signs its hash), and
// AES-128-GCM of the body in 16 KiB TLS records. It runs on one locked thread; the best of three
// passes.
func floorPerRecord(data [][]byte, protocol string) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	block, _ := aes.NewCipher(make([]byte, 16))
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, gcm.NonceSize())
	key := strings.Repeat("k", kinesis.KeyLen)
	var body, sealed []byte
	var sum [sha256.Size]byte
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		for off := 0; off < len(data); off += limits.MaxRecordsPerRequest {
			batch := data[off:min(off+limits.MaxRecordsPerRequest, len(data))]
			if protocol == config.ProtocolJSON {
				body = appendJSONFloorBody(body[:0], batch, key)
			} else {
				body = appendCBORFloorBody(body[:0], batch, key)
			}
			sum = sha256.Sum256(body)
			for p := 0; p < len(body); p += 16 << 10 {
				sealed = gcm.Seal(sealed[:0], nonce, body[p:min(p+16<<10, len(body))], nil)
			}
		}
		best = min(best, time.Since(start))
	}
	_ = sum
	return best / time.Duration(len(data))
}

// appendJSONFloorBody appends a PutRecords body in JSON, with encoding/base64.
func appendJSONFloorBody(body []byte, batch [][]byte, key string) []byte {
	body = append(body, `{"Records":[`...)
	for i, d := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"Data":"`...)
		body = base64.StdEncoding.AppendEncode(body, d)
		body = append(body, `","PartitionKey":"`...)
		body = append(body, key...)
		body = append(body, `"}`...)
	}
	return append(body, `],"StreamName":"`+streamName+`"}`...)
}

// appendCBORFloorBody appends a PutRecords body in CBOR (record data under 64 KiB).
func appendCBORFloorBody(body []byte, batch [][]byte, key string) []byte {
	body = append(body, 0xa2, 0x67)
	body = append(body, "Records"...)
	body = append(body, 0x99, byte(len(batch)>>8), byte(len(batch)))
	for _, d := range batch {
		body = append(body, 0xa2, 0x64)
		body = append(body, "Data"...)
		body = append(body, 0x59, byte(len(d)>>8), byte(len(d)))
		body = append(body, d...)
		body = append(body, 0x6c)
		body = append(body, "PartitionKey"...)
		body = append(body, 0x70) // a text string of 16 bytes, kinesis.KeyLen
		body = append(body, key...)
	}
	body = append(body, 0x6a)
	body = append(body, "StreamName"...)
	body = append(body, 0x60|byte(len(streamName)))
	return append(body, streamName...)
}

// perfProtocol is PERF_PROTOCOL, the plugin's protocol key: its default when unset.
func perfProtocol(tb testing.TB) string {
	tb.Helper()
	switch v := os.Getenv("PERF_PROTOCOL"); v {
	case "":
		return config.DefaultProtocol
	case config.ProtocolCBOR, config.ProtocolJSON:
		return v
	default:
		tb.Fatalf("PERF_PROTOCOL=%q: want cbor or json", v)
		return ""
	}
}

// sink is a running sink process (sink/main.go).
type sink struct {
	Endpoint string // https://127.0.0.1:PORT
	CAFile   string // its certificate, for AWS_CA_BUNDLE
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	client   *http.Client
}

// sinkStats is the sink's GET /stats.
type sinkStats struct{ Requests, Records, Bytes, HTTP2, WireIn, WireOut int64 }

// goTool returns the go command of the toolchain running the benchmark.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startSink builds and starts the sink in dir; it is stopped when tb ends.
func startSink(tb testing.TB, dir string) *sink {
	tb.Helper()
	return startSinkLatency(tb, dir, 0)
}

// startSinkLatency is startSink with a sink that waits latency before each answer.
func startSinkLatency(tb testing.TB, dir string, latency time.Duration) *sink {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	bin := filepath.Join(dir, "sink")
	if out, err := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./sink").CombinedOutput(); err != nil {
		tb.Fatalf("build sink: %v\n%s", err, out)
	}
	s := &sink{CAFile: filepath.Join(dir, "sink-ca.pem")}
	s.cmd = exec.Command(bin, "-cert", s.CAFile, "-latency", latency.String())
	s.cmd.Stderr = os.Stderr
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	s.stdin = stdin
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.stop)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		ep, ok := strings.CutPrefix(line, "ready ")
		if !ok {
			tb.Fatalf("sink: unexpected first line %q", line)
		}
		s.Endpoint = ep
	case <-time.After(30 * time.Second):
		tb.Fatal("sink: not ready after 30s")
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	s.client = &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return s
}

// stop closes the sink's stdin (it exits) and waits for it, killing it after 5 s.
func (s *sink) stop() {
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// stats returns the sink's counters.
func (s *sink) stats(tb testing.TB) sinkStats {
	tb.Helper()
	resp, err := s.client.Get(s.Endpoint + "/stats")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var st sinkStats
	line, _ := io.ReadAll(resp.Body)
	if _, err := fmt.Sscanf(string(line), "requests=%d records=%d bytes=%d http2=%d wire_in=%d wire_out=%d",
		&st.Requests, &st.Records, &st.Bytes, &st.HTTP2, &st.WireIn, &st.WireOut); err != nil {
		tb.Fatalf("sink stats %q: %v", line, err)
	}
	return st
}

func (a sinkStats) sub(b sinkStats) sinkStats {
	return sinkStats{a.Requests - b.Requests, a.Records - b.Records, a.Bytes - b.Bytes, a.HTTP2 - b.HTTP2,
		a.WireIn - b.WireIn, a.WireOut - b.WireOut}
}

// clientEnv is the AWS environment of a client of the sink: fake credentials, no shared files
// (empty ones in dir), no instance metadata, the sink's certificate as the CA bundle.
func clientEnv(tb testing.TB, dir string, s *sink) []string {
	tb.Helper()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return []string{
		"HOME=" + dir,
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CA_BUNDLE=" + s.CAFile,
	}
}
