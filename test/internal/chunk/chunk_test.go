package chunk

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"escapes", "q\" b\\ n\n t\t r\r b\b f\f c\x01 c\x1f", `"q\" b\\ n\n t\t r\r b\b f\f c\u0001 c\u001f"`},
		{"left as is", "/ <a>&' é 日 🚀 \u2028 \x7f", "\"/ <a>&' é 日 🚀 \u2028 \x7f\""},
		{"invalid utf-8", "a\xffb\xc3", "\"a\uFFFDb\uFFFD\""},
		{"numbers", []any{int64(-9223372036854775808), uint64(18446744073709551615), 0}, `[-9223372036854775808,18446744073709551615,0]`},
		{"ordered map", Map{{"z", true}, {"a", nil}, {"m", Map{}}, {"k", []any{}}}, `{"z":true,"a":null,"m":{},"k":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(AppendJSON(nil, tt.v)); got != tt.want {
				t.Errorf("AppendJSON(%q)\n got %s\nwant %s", tt.v, got, tt.want)
			}
		})
	}
}

// TestBuildDecodes reads every chunk format back with an independent msgpack
// decoder and checks the structure, header widths and values, and that the
// expected JSON parses to the same values.
func TestBuildDecodes(t *testing.T) {
	t.Parallel()
	evs := LogEvents("src", 0, 120, 300)
	evs = append(evs, LogEvents("big", 500, 2, 70000)...)
	tests := []struct {
		format Format
		prefix []byte
	}{
		{V2Wide, []byte{0xdd, 0, 0, 0, 2, 0xdd, 0, 0, 0, 2, 0xd7, 0x00}},
		{V2Compact, []byte{0x92, 0x92, 0xd7, 0x00}},
		{Legacy, []byte{0x92, 0xce}},
	}
	for _, tt := range tests {
		t.Run(tt.format.String(), func(t *testing.T) {
			t.Parallel()
			b := Build(tt.format, evs)
			if !bytes.HasPrefix(b, tt.prefix) {
				t.Fatalf("chunk starts % x, want % x", b[:len(tt.prefix)], tt.prefix)
			}
			for i, ev := range evs {
				var top any
				var err error
				top, b, err = msgp.ReadIntfBytes(b)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				arr, ok := top.([]any)
				if !ok || len(arr) != 2 {
					t.Fatalf("event %d: %T %v, want a 2-array", i, top, top)
				}
				if tt.format == Legacy {
					if sec, ok := arr[0].(uint64); !ok || sec != uint64(ev.Sec) {
						t.Errorf("event %d: time %v, want %d", i, arr[0], ev.Sec)
					}
				} else {
					head, ok := arr[0].([]any)
					if !ok || len(head) != 2 {
						t.Fatalf("event %d: header %v", i, arr[0])
					}
					ext, ok := head[0].(*msgp.RawExtension)
					want := []byte{byte(ev.Sec >> 24), byte(ev.Sec >> 16), byte(ev.Sec >> 8), byte(ev.Sec),
						byte(ev.Nsec >> 24), byte(ev.Nsec >> 16), byte(ev.Nsec >> 8), byte(ev.Nsec)}
					if !ok || ext.Type != 0 || !bytes.Equal(ext.Data, want) {
						t.Errorf("event %d: time %v, want ext 0 % x", i, head[0], want)
					}
					if md, ok := head[1].(map[string]any); !ok || len(md) != 0 {
						t.Errorf("event %d: metadata %v, want {}", i, head[1])
					}
				}
				if got, want := normalize(arr[1]), normalize(ev.Record); !reflect.DeepEqual(got, want) {
					t.Fatalf("event %d:\n got %v\nwant %v", i, got, want)
				}
			}
			if len(b) != 0 {
				t.Errorf("%d bytes left after the events", len(b))
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		for i, ev := range evs {
			js := AppendJSON(nil, ev.Record)
			if !json.Valid(js) {
				t.Fatalf("event %d: invalid JSON %s", i, js)
			}
			if bytes.Contains(js, []byte{0xff}) || bytes.Contains(js, []byte(`\/`)) {
				t.Fatalf("event %d: raw invalid byte or escaped slash in %s", i, js)
			}
			if int(ev.Record[2].Value.(int64))%50 == 3 {
				continue // invalid UTF-8 is replaced, so the values differ
			}
			d := json.NewDecoder(bytes.NewReader(js))
			d.UseNumber()
			var got any
			if err := d.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if want := normalize(ev.Record); !reflect.DeepEqual(normalize(got), want) {
				t.Fatalf("event %d: JSON %s\nparses to %v\nwant %v", i, js, normalize(got), want)
			}
		}
	})
}

// normalize turns values from this package, msgp and encoding/json into one
// comparable form: maps as map[string]any, numbers as decimal strings.
func normalize(v any) any {
	switch v := v.(type) {
	case Map:
		m := make(map[string]any, len(v))
		for _, f := range v {
			m[f.Key] = normalize(f.Value)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = normalize(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = normalize(e)
		}
		return a
	case int64:
		return "n" + strconv.FormatInt(v, 10)
	case uint64:
		return "n" + strconv.FormatUint(v, 10)
	case json.Number:
		return "n" + v.String()
	}
	return v
}
