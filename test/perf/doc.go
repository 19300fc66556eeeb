// Package perf holds the end-to-end performance benchmarks of the plugin (run by `make bench`, not
// by `make test`): BenchmarkWholePath drives the built library through its C ABI (test/host) and
// BenchmarkFlushTLS the same path in-process from batcher.Pool.Flush (for pprof), both against
// sink/, a minimal Kinesis-compatible HTTPS endpoint run as a separate process so that its CPU
// time is not counted. Each reports CPU per record against a floor measured in the same run: the
// base64, SHA-256 and AES-GCM that sending the same bytes to Kinesis over TLS cannot avoid.
package perf
