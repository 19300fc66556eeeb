package perf

import (
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
)

// BenchmarkRecordPath is the record part of BenchmarkWholePath on its own: decode the same
// chunks and encode each event (record.Decoder.NextAppend) as the plugin does by default (JSON and a newline), in the chunk
// format Fluent Bit 4 writes (32-bit headers, 64-bit integers) and in the compact one of
// Fluent Bit 5.
func BenchmarkRecordPath(b *testing.B) {
	input := perfInput(b)
	for _, f := range []chunk.Format{chunk.V2Wide, chunk.V2Compact} {
		b.Run(f.String(), func(b *testing.B) {
			data := chunk.Build(f, events(input, 0, chunkRecords))
			enc := record.NewEncoder(record.Options{AppendNewline: true})
			var d record.Decoder
			var ev record.Event
			dst := make([]byte, 0, 4096)
			var err error
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				d.Reset(data)
				n := 0
				for {
					var ok bool
					if dst, ok, err = d.NextAppend(enc, dst[:0], &ev); !ok {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if d.Err() != nil || n != chunkRecords {
					b.Fatalf("%d records, error %v", n, d.Err())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*chunkRecords), "ns/record")
		})
	}
}
