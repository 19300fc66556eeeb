package record

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// containerLogChunk returns a chunk of n container log events as Fluent Bit 4 sends
// them from a Kubernetes node: [[time, {}], record] with 32-bit array headers, each
// record about 400 bytes of msgpack (log line, stream, time, kubernetes metadata).
func containerLogChunk(n int) []byte {
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	var w mp
	for i := range n {
		w = w.arr32(2).arr32(2).eventTime(uint32(1714564800+i/100), uint32(i%100)*10000000).map32(0)
		w = w.map_(4).
			str("log").str(fmt.Sprintf("2024-05-01T12:00:%02d.%03dZ %-5s [http-nio-8080-exec-%d] c.e.shop.OrderController - "+
			"Processed order %d for customer \"%d\" in %d ms\n", i%60, i%1000, levels[i%4], i%16, 100000+i, 5000+i*7, i%250)).
			str("stream").str([]string{"stdout", "stderr"}[i%2]).
			str("time").str(fmt.Sprintf("2024-05-01T12:00:%02d.%09dZ", i%60, i*7919%1000000000)).
			str("kubernetes").map_(6).
			str("pod_name").str(fmt.Sprintf("orders-api-7d9f8b6c5d-x%04d", i%37)).
			str("namespace_name").str("shop").
			str("pod_id").str("3f2a9c4e-1b7d-4e8a-9f60-2c5d8e1a7b3c").
			str("labels").map_(2).str("app").str("orders-api").str("pod-template-hash").str("7d9f8b6c5d").
			str("host").str("ip-10-0-1-23.ec2.internal").
			str("container_name").str("orders-api")
	}
	return w
}

const benchRecords = 1000

func BenchmarkDecode(b *testing.B) {
	chunk := containerLogChunk(benchRecords)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	var d Decoder
	var ev Event
	for b.Loop() {
		d.Reset(chunk)
		n := 0
		for d.Next(&ev) {
			n++
		}
		if d.Err() != nil || n != benchRecords {
			b.Fatalf("%d events, error %v", n, d.Err())
		}
	}
}

// BenchmarkEncode decodes and encodes a chunk of container logs into JSON lines, the
// way the plugin does per flush.
func BenchmarkEncode(b *testing.B) {
	chunk := containerLogChunk(benchRecords)
	enc := NewEncoder(Options{AppendNewline: true})
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	var d Decoder
	var ev Event
	dst := make([]byte, 0, 4096)
	var err error
	for b.Loop() {
		d.Reset(chunk)
		for d.Next(&ev) {
			if dst, err = enc.Append(dst[:0], &ev); err != nil {
				b.Fatal(err)
			}
		}
		if d.Err() != nil {
			b.Fatal(d.Err())
		}
	}
}

// BenchmarkEncodeOptions is BenchmarkEncode with each option that changes the JSON.
// The chunk's keys have no dots, as most keys do: replace_dots costs a scan of each
// key; dotted/replace_dots has a dot in 3 of the 20 keys of each record.
func BenchmarkEncodeOptions(b *testing.B) {
	format, err := timefmt.Compile("%Y-%m-%dT%H:%M:%S.%3NZ")
	if err != nil {
		b.Fatal(err)
	}
	chunk := containerLogChunk(benchRecords)
	dotted := bytes.ReplaceAll(chunk, []byte("\xa3app\xaaorders-api"), []byte("\xa3a.p\xaaorders-api"))
	dotted = bytes.ReplaceAll(dotted, []byte("\xa4host"), []byte("\xa4h.st"))
	dotted = bytes.ReplaceAll(dotted, []byte("\xa6pod_id"), []byte("\xa6pod.id"))
	if n := bytes.Count(dotted, []byte(".")) - bytes.Count(chunk, []byte(".")); n != 3*benchRecords {
		b.Fatalf("%d dots added to the keys, want %d", n, 3*benchRecords)
	}
	for _, bc := range []struct {
		name  string
		chunk []byte
		opts  Options
	}{
		{"time_key", chunk, Options{TimeKey: "@timestamp", TimeFormat: format, AppendNewline: true}},
		{"log_key", chunk, Options{LogKey: "log", AppendNewline: true}},
		{"data_keys", chunk, Options{DataKeys: []string{"log", "kubernetes"}, AppendNewline: true}},
		{"replace_dots", chunk, Options{ReplaceDots: "_", AppendNewline: true}},
		{"dotted/replace_dots", dotted, Options{ReplaceDots: "_", AppendNewline: true}},
		{"all", chunk, Options{DataKeys: []string{"log", "kubernetes"}, ReplaceDots: "_",
			TimeKey: "@timestamp", TimeFormat: format, AppendNewline: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			enc := NewEncoder(bc.opts)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.chunk)))
			var d Decoder
			var ev Event
			dst := make([]byte, 0, 4096)
			var err error
			for b.Loop() {
				d.Reset(bc.chunk)
				for d.Next(&ev) {
					if dst, err = enc.Append(dst[:0], &ev); err != nil {
						b.Fatal(err)
					}
				}
				if d.Err() != nil {
					b.Fatal(d.Err())
				}
			}
		})
	}
}
