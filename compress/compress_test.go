package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	stdzlib "compress/zlib"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var kinds = []Kind{None, Gzip, Zlib, Zstd}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Kind
		err  bool
	}{
		{"none", "none", None, false},
		{"empty is none", "", None, false},
		{"gzip", "gzip", Gzip, false},
		{"zlib", "zlib", Zlib, false},
		{"zstd", "zstd", Zstd, false},
		{"any case", "GZip", Gzip, false},
		{"spaces", "  zstd ", Zstd, false},
		{"lz4", "lz4", None, true},
		{"snappy", "snappy", None, true},
		{"level suffix", "gzip9", None, true},
		{"arrow", "arrow", None, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.in)
			if tc.err {
				if !errors.Is(err, ErrUnknown) {
					t.Fatalf("Parse(%q) error = %v, want ErrUnknown", tc.in, err)
				}
				want := fmt.Sprintf("unknown compression %q: want none, gzip, zlib or zstd", tc.in)
				if err.Error() != want {
					t.Fatalf("Parse(%q) error = %q, want %q", tc.in, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		if got, err := Parse(k.String()); err != nil || got != k {
			t.Errorf("Parse(%v.String()) = %v, %v", k, got, err)
		}
	}
	if got := Kind(9).String(); got != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", got)
	}
}

// decompress decodes one stream with an implementation independent of the encoder: the standard
// library for gzip and zlib, klauspost's zstd decoder (a different code path from its encoder).
// It insists that the stream is all of data.
func decompress(k Kind, data []byte) ([]byte, error) {
	switch k {
	case None:
		return append([]byte(nil), data...), nil
	case Gzip:
		// A bytes.Reader is an io.ByteReader, so the gzip and flate readers read from it
		// directly, no further than the member's end.
		br := bytes.NewReader(data)
		r, err := stdgzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r.Multistream(false)
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		if br.Len() != 0 {
			return nil, fmt.Errorf("%d bytes after the gzip member", br.Len())
		}
		return out, nil
	case Zlib:
		br := bytes.NewReader(data)
		r, err := stdzlib.NewReader(br)
		if err != nil {
			return nil, err
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		if br.Len() != 0 {
			return nil, fmt.Errorf("%d bytes after the zlib stream", br.Len())
		}
		return out, nil
	case Zstd:
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(data, nil)
	}
	return nil, fmt.Errorf("kind %v", k)
}

// containerLogs returns n JSON lines like those a Kubernetes node sends, as the record encoder
// writes them.
func containerLogs(n int) [][]byte {
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = fmt.Appendf(nil, `{"log":"2024-05-01T12:00:%02d.%03dZ %-5s [http-nio-8080-exec-%d] c.e.shop.OrderController - `+
			`Processed order %d for customer \"%d\" in %d ms\n","stream":"%s","time":"2024-05-01T12:00:%02d.%09dZ",`+
			`"kubernetes":{"pod_name":"orders-api-7d9f8b6c5d-x%04d","namespace_name":"shop","pod_id":"3f2a9c4e-1b7d-4e8a-9f60-2c5d8e1a7b3c",`+
			`"labels":{"app":"orders-api","pod-template-hash":"7d9f8b6c5d"},"host":"ip-10-0-1-23.ec2.internal","container_name":"orders-api"}}`+"\n",
			i%60, i%1000, levels[i%4], i%16, 100000+i, 5000+i*7, i%250, []string{"stdout", "stderr"}[i%2], i%60, i*7919%1000000000, i%37)
	}
	return recs
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(b)
	return b
}

// inputs are the round-trip cases: empty, tiny, typical, large (5 MiB) and incompressible.
func inputs() []struct {
	name string
	data []byte
} {
	logs := bytes.Join(containerLogs(12000), nil)
	return []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{'x'}},
		{"newline", []byte("\n")},
		{"small json", []byte(`{"log":"hello","stream":"stdout"}` + "\n")},
		{"one container log", containerLogs(1)[0]},
		{"all byte values", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
		{"zeros 1MiB", make([]byte, 1<<20)},
		{"random 1KiB", randomBytes(1, 1<<10)},
		{"random 100KiB", randomBytes(2, 100<<10)},
		{"logs 5MiB", logs[:5<<20]},
		{"random 5MiB", randomBytes(3, 5<<20)},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			t.Parallel()
			c := New(k)
			if c.Kind() != k {
				t.Fatalf("Kind() = %v", c.Kind())
			}
			prefix := []byte("prefix")
			dst := append([]byte(nil), prefix...)
			// One Compressor for every input in turn: each stream must stand alone.
			for _, in := range inputs() {
				var err error
				dst, err = c.Append(dst[:len(prefix)], in.data)
				if err != nil {
					t.Fatalf("%s: Append: %v", in.name, err)
				}
				if !bytes.Equal(dst[:len(prefix)], prefix) {
					t.Fatalf("%s: Append changed dst's bytes: %q", in.name, dst[:len(prefix)])
				}
				out := dst[len(prefix):]
				if k != None && len(out) == 0 {
					t.Fatalf("%s: empty stream", in.name)
				}
				if len(out) > k.Bound(len(in.data)) {
					t.Errorf("%s: %d bytes compressed to %d > Bound %d", in.name, len(in.data), len(out), k.Bound(len(in.data)))
				}
				got, err := decompress(k, out)
				if err != nil {
					t.Fatalf("%s: decompress %d bytes: %v", in.name, len(out), err)
				}
				if !bytes.Equal(got, in.data) {
					t.Fatalf("%s: round trip gave %d bytes, want %d (first difference at %d)",
						in.name, len(got), len(in.data), firstDiff(got, in.data))
				}
				if k != None && strings.HasPrefix(in.name, "logs") && len(out) > len(in.data)/4 {
					t.Errorf("%s: %d bytes compressed to %d only", in.name, len(in.data), len(out))
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSingleStream: two records compressed back to back are two streams, and each record's
// bytes are exactly one stream, nothing before, nothing after (decompress checks that no byte
// is left after the stream, and a gzip multistream reader rejects trailing bytes).
func TestSingleStream(t *testing.T) {
	t.Parallel()
	a, b := []byte("first record\n"), []byte("second record\n")
	for _, k := range []Kind{Gzip, Zlib, Zstd} {
		c := New(k)
		one, err := c.Append(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		both, err := c.Append(append([]byte(nil), one...), b)
		if err != nil {
			t.Fatal(err)
		}
		second := both[len(one):]
		for _, tc := range []struct {
			data, want []byte
		}{{one, a}, {second, b}} {
			got, err := decompress(k, tc.data)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("%v: %q, %v; want %q", k, got, err, tc.want)
			}
		}
		if k == Gzip {
			// A gzip member with trailing garbage is an error for a multistream reader: the
			// record is one member exactly.
			r, err := stdgzip.NewReader(bytes.NewReader(append(append([]byte(nil), one...), 'x')))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); err == nil {
				t.Fatalf("gzip: trailing byte not detected: the test cannot tell a member's end")
			}
			r, _ = stdgzip.NewReader(bytes.NewReader(one))
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, a) {
				t.Fatalf("gzip: multistream read = %q, %v", got, err)
			}
		}
	}
}

// TestBound compresses incompressible data of many sizes, where the output is largest.
func TestBound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := []int{0, 1, 2, 100, 1000, 16383, 16384, 16385, 65535, 65536, 65537, 128 << 10, 128<<10 + 1, 1 << 20, 5 << 20}
	for range 40 {
		sizes = append(sizes, rng.IntN(400<<10))
	}
	src := randomBytes(9, 5<<20)
	for _, k := range kinds {
		c := New(k)
		for _, n := range sizes {
			out, err := c.Append(nil, src[:n])
			if err != nil {
				t.Fatal(err)
			}
			if b := k.Bound(n); len(out) > b {
				t.Errorf("%v: %d random bytes compressed to %d > Bound %d", k, n, len(out), b)
			}
			// The bound is not so loose that packing by it wastes room.
			if slack := k.Bound(n) - n; slack > n/200+300 {
				t.Errorf("%v: Bound(%d) = %d allows %d bytes more", k, n, k.Bound(n), slack)
			}
		}
	}
	if got := Zstd.Bound(-1); got != Zstd.Bound(0) {
		t.Errorf("Bound(-1) = %d", got)
	}
}

func TestNoneAppends(t *testing.T) {
	t.Parallel()
	c := New(None)
	got, err := c.Append([]byte("a"), []byte("bc"))
	if err != nil || string(got) != "abc" {
		t.Fatalf("Append = %q, %v", got, err)
	}
	if c.gz != nil || c.zl != nil || c.zs != nil {
		t.Fatal("a None compressor created an encoder")
	}
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	dst := []byte("keep")
	got, err := New(Kind(9)).Append(dst, []byte("x"))
	if !errors.Is(err, ErrUnknown) || string(got) != "keep" {
		t.Fatalf("Append = %q, %v; want dst unchanged and ErrUnknown", got, err)
	}
}

// TestAllocs: in steady state, compressing a record allocates nothing.
func TestAllocs(t *testing.T) {
	recs := containerLogs(100)
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			c := New(k)
			dst := make([]byte, 0, 64<<10)
			run := func() {
				for _, r := range recs {
					var err error
					if dst, err = c.Append(dst[:0], r); err != nil {
						t.Fatal(err)
					}
				}
			}
			run()
			if n := testing.AllocsPerRun(10, run); n != 0 {
				t.Fatalf("%v allocations per %d records, want 0", n, len(recs))
			}
		})
	}
}

// BenchmarkCompress compresses 1000 container-log records one by one (compression per Kinesis
// record), and the same records joined (a simple aggregate); ratio is compressed/original size.
func BenchmarkCompress(b *testing.B) {
	const records = 1000
	recs := containerLogs(records)
	joined := bytes.Join(recs, nil)
	for _, k := range kinds {
		b.Run(fmt.Sprintf("%v/records=%d", k, records), func(b *testing.B) {
			c := New(k)
			dst, err := c.Append(make([]byte, 0, 64<<10), recs[0]) // create the encoder
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(joined)))
			var out int
			for b.Loop() {
				out = 0
				for _, r := range recs {
					var err error
					if dst, err = c.Append(dst[:0], r); err != nil {
						b.Fatal(err)
					}
					out += len(dst)
				}
			}
			b.ReportMetric(float64(out)/float64(len(joined)), "ratio")
		})
		b.Run(fmt.Sprintf("%v/joined=%d", k, records), func(b *testing.B) {
			c := New(k)
			dst, err := c.Append(make([]byte, 0, k.Bound(len(joined))), joined) // create the encoder
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(joined)))
			for b.Loop() {
				var err error
				if dst, err = c.Append(dst[:0], joined); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(dst))/float64(len(joined)), "ratio")
		})
	}
}
