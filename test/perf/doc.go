// Package perf holds the end-to-end performance benchmarks of the plugin (run by `make bench` and
// `make bench-fluent-bit`, not by `make test`):
//
//   - BenchmarkFluentBit, the one that counts: a real Fluent Bit (FLUENT_BIT) tails container log
//     lines into its null output, its C kinesis_streams output and this plugin in turn, and reports
//     each output's CPU per record over null, its peak resident set and its bytes on the wire;
//   - BenchmarkWholePath, the profiling harness: a small C host (test/host) drives the built
//     library through its C ABI, with the floor that sending the same bytes cannot avoid;
//   - BenchmarkFlushTLS, the same path in-process from batcher.Pool.Flush (for pprof).
//
// Every Kinesis output sends to sink/, a minimal Kinesis-compatible HTTPS endpoint run as a
// separate process so that its CPU time is not counted.
package perf
