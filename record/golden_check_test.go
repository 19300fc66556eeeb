package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// TestGoldenIndependent checks what the golden files hold without this package's
// decoder or encoder: each chunk is read with msgp, each record's JSON with
// encoding/json, each time is formatted with the time package, and what every
// option must do is worked out from those. It is the review of the golden files
// that -update cannot do.
func TestGoldenIndependent(t *testing.T) {
	t.Parallel()
	for _, c := range goldenChunks {
		chunk, err := os.ReadFile(filepath.Join(goldenDir, c.name+".msgpack"))
		if err != nil {
			t.Fatal(err)
		}
		events, cut := msgpEvents(chunk)
		for _, s := range goldenOptions(t) {
			name := c.name + "." + s.name
			golden, err := os.ReadFile(filepath.Join(goldenDir, name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			frames, chunkErr, err := parseFrames(golden)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if len(frames) != len(events) {
				t.Errorf("%s: %d frames, msgp reads %d events", name, len(frames), len(events))
				continue
			}
			if (chunkErr != "") != cut {
				t.Errorf("%s: chunk error %q, but msgp says cut short: %v", name, chunkErr, cut)
			}
			for i, f := range frames {
				if msg := checkFrame(events[i], f, s.opts); msg != "" {
					t.Errorf("%s: event %d: %s", name, i, msg)
				}
			}
		}
	}
}

// indepEvent is an event as msgp reads it.
type indepEvent struct {
	time time.Time
	body []byte
}

// msgpEvents reads chunk with msgp; cut reports bytes left that are not an event.
func msgpEvents(chunk []byte) (events []indepEvent, cut bool) {
	b := chunk
	for len(b) > 0 {
		ev, rest, err := msgpEvent(b)
		if err != nil {
			return events, true
		}
		events = append(events, ev)
		b = rest
	}
	return events, false
}

func msgpEvent(b []byte) (indepEvent, []byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		return indepEvent{}, nil, fmt.Errorf("not an array of 2: %v", err)
	}
	meta := uint32(0)
	if msgp.NextType(b) == msgp.ArrayType {
		if meta, b, err = msgp.ReadArrayHeaderBytes(b); err != nil || meta == 0 {
			return indepEvent{}, nil, fmt.Errorf("bad header: %v", err)
		}
		meta--
	}
	var ev indepEvent
	switch msgp.NextType(b) {
	case msgp.ExtensionType:
		ext := msgp.RawExtension{Type: 0}
		if b, err = msgp.ReadExtensionBytes(b, &ext); err != nil || len(ext.Data) != 8 {
			return indepEvent{}, nil, fmt.Errorf("bad ext time: %v", err)
		}
		ev.time = time.Unix(int64(binary.BigEndian.Uint32(ext.Data)), int64(binary.BigEndian.Uint32(ext.Data[4:])))
	case msgp.IntType, msgp.UintType:
		var sec int64
		if sec, b, err = msgp.ReadInt64Bytes(b); err != nil {
			return indepEvent{}, nil, err
		}
		ev.time = time.Unix(sec, 0)
	case msgp.Float64Type:
		var f float64
		if f, b, err = msgp.ReadFloat64Bytes(b); err != nil {
			return indepEvent{}, nil, err
		}
		sec := math.Floor(f)
		ev.time = time.Unix(int64(sec), int64(math.Round((f-sec)*1e9)))
	default:
		return indepEvent{}, nil, fmt.Errorf("time is a %v", msgp.NextType(b))
	}
	for ; meta > 0; meta-- {
		if b, err = msgp.Skip(b); err != nil {
			return indepEvent{}, nil, err
		}
	}
	rest, err := msgp.Skip(b)
	if err != nil {
		return indepEvent{}, nil, err
	}
	ev.body = b[:len(b)-len(rest)]
	return ev, rest, nil
}

// frame is one event's result in a golden file.
type frame struct {
	data []byte
	err  string // "" when data is set
}

func parseFrames(golden []byte) (frames []frame, chunkErr string, err error) {
	b := golden
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return nil, "", fmt.Errorf("unterminated line %q", line)
		}
		if msg, ok := bytes.CutPrefix(line, []byte(chunkErrorFrame)); ok {
			if len(rest) != 0 {
				return nil, "", fmt.Errorf("%d bytes after the chunk error", len(rest))
			}
			return frames, string(msg), nil
		}
		head, ok := bytes.CutPrefix(line, []byte(framePrefix))
		if !ok {
			return nil, "", fmt.Errorf("bad frame line %q", line)
		}
		index, what, _ := strings.Cut(string(head), ": ")
		if index != strconv.Itoa(len(frames)) {
			return nil, "", fmt.Errorf("frame %q, want event %d", line, len(frames))
		}
		if msg, ok := strings.CutPrefix(what, "error: "); ok {
			frames = append(frames, frame{err: msg})
			b = rest
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(what, " bytes"))
		if err != nil || n > len(rest)-1 || rest[n] != '\n' {
			return nil, "", fmt.Errorf("bad frame %q", line)
		}
		frames = append(frames, frame{data: rest[:n]})
		b = rest[n+1:]
	}
	return frames, "", nil
}

// msgpField is a top-level field of a record, as msgp reads it.
type msgpField struct {
	name    string // the raw name of a str or bin key
	named   bool   // the key is a str or bin
	keyText string // the key as JSON reads it back: the name, or the key's JSON text
	key     []byte // raw msgpack key
	value   []byte // raw msgpack value
}

func msgpFields(body []byte) ([]msgpField, error) {
	n, b, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return nil, err
	}
	fields := make([]msgpField, 0, n)
	for range n {
		var f msgpField
		rest, err := msgp.Skip(b)
		if err != nil {
			return nil, err
		}
		f.key = b[:len(b)-len(rest)]
		switch msgp.NextType(b) {
		case msgp.StrType, msgp.BinType:
			raw, _, err := msgp.ReadBytesZC(b)
			if err != nil {
				s, _, err2 := msgp.ReadStringZC(b)
				if err2 != nil {
					return nil, err
				}
				raw = s
			}
			f.name, f.named, f.keyText = string(raw), true, validUTF8(string(raw))
		default:
			// A key that is not a string: its JSON text, as encoding/json writes it.
			v, _, err := msgp.ReadIntfBytes(b)
			if err == nil {
				if fl, ok := v.(float64); ok && (math.IsNaN(fl) || math.IsInf(fl, 0)) {
					v = nil
				}
				if _, ok := v.(msgp.Extension); ok {
					v = nil
				}
				text, _ := json.Marshal(v)
				f.keyText = string(text)
			}
		}
		b = rest
		if rest, err = msgp.Skip(b); err != nil {
			return nil, err
		}
		f.value = b[:len(b)-len(rest)]
		b = rest
		fields = append(fields, f)
	}
	return fields, nil
}

// troublesome reports whether encoding a field must fail: a value nested 1000
// levels deep, counting the record, or a container key holding a container key.
func (f msgpField) troublesome() bool {
	return msgpDepth(f.value) >= maxDepth || msgpDepth(f.key) >= maxDepth || containerKeyInside(f.key)
}

// msgpDepth counts the arrays and maps around the deepest value of b, plus one
// for the record holding b.
func msgpDepth(b []byte) int {
	d, _ := depthOf(b)
	return d + 1
}

func depthOf(b []byte) (int, []byte) {
	var n uint32
	var err error
	switch msgp.NextType(b) {
	case msgp.ArrayType:
		n, b, err = msgp.ReadArrayHeaderBytes(b)
	case msgp.MapType:
		var pairs uint32
		pairs, b, err = msgp.ReadMapHeaderBytes(b)
		n = 2 * pairs
	default:
		rest, _ := msgp.Skip(b)
		return 0, rest
	}
	if err != nil {
		return 0, nil
	}
	deepest := 0
	for range n {
		var d int
		d, b = depthOf(b)
		deepest = max(deepest, d)
	}
	return deepest + 1, b
}

// containerKeyInside reports whether the array or map b holds a map whose key is
// an array or map.
func containerKeyInside(b []byte) bool {
	t := msgp.NextType(b)
	if t != msgp.ArrayType && t != msgp.MapType {
		return false
	}
	var found bool
	var walk func(b []byte) []byte
	walk = func(b []byte) []byte {
		switch msgp.NextType(b) {
		case msgp.ArrayType:
			n, b, _ := msgp.ReadArrayHeaderBytes(b)
			for range n {
				b = walk(b)
			}
			return b
		case msgp.MapType:
			n, b, _ := msgp.ReadMapHeaderBytes(b)
			for range n {
				if t := msgp.NextType(b); t == msgp.ArrayType || t == msgp.MapType {
					found = true
				}
				b = walk(walk(b))
			}
			return b
		}
		rest, _ := msgp.Skip(b)
		return rest
	}
	walk(b)
	return found
}

// jsonField is a top-level field of the JSON object in a golden file.
type jsonField struct {
	key   string
	value json.RawMessage
}

func jsonFields(js []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %q", js)
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fields = append(fields, jsonField{key: tok.(string), value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("data after the object in %q", js)
	}
	return fields, nil
}

// rewriteKeys replaces the dots of every map key in a value msgp read.
func rewriteKeys(v any, dots string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[strings.ReplaceAll(k, ".", dots)] = rewriteKeys(e, dots)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = rewriteKeys(e, dots)
		}
		return out
	}
	return v
}

// sameJSON compares a raw msgpack value with a raw JSON value, keys rewritten.
func sameJSON(value []byte, js []byte, dots string) string {
	want, _, err := msgp.ReadIntfBytes(value)
	if err != nil {
		return "msgp cannot read the value: " + err.Error()
	}
	if dots != "" {
		want = rewriteKeys(want, dots)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var got any
	if err := dec.Decode(&got); err != nil {
		return err.Error()
	}
	return sameValue(want, got)
}

// goTimeLayout is the Go layout of a time_key_format used by the option sets.
var goTimeLayout = map[string]string{
	"%Y-%m-%dT%H:%M:%S.%3NZ": "2006-01-02T15:04:05.000Z",
	"%Y-%m-%dT%H:%M:%S.%9NZ": "2006-01-02T15:04:05.000000000Z",
}

// checkFrame works out what options o make of ev and compares it with f.
func checkFrame(ev indepEvent, f frame, o Options) string {
	data := f.data
	if f.err == "" {
		if o.AppendNewline {
			if !bytes.HasSuffix(data, []byte("\n")) {
				return "no newline at the end"
			}
			data = data[:len(data)-1]
		} else if bytes.HasSuffix(data, []byte("\n")) && o.LogKey == "" {
			return "a newline at the end"
		}
	}
	if msgp.NextType(ev.body) != msgp.MapType {
		if f.err != ErrNotMap.Error() {
			return fmt.Sprintf("record is a %v: got %q, %q, want %v", msgp.NextType(ev.body), f.data, f.err, ErrNotMap)
		}
		return ""
	}
	fields, err := msgpFields(ev.body)
	if err != nil {
		return "msgp: " + err.Error()
	}
	if o.LogKey != "" {
		return checkLogKey(fields, f, data, o)
	}

	// The fields that must be there, in order, under their output names.
	dots := o.ReplaceDots
	rename := func(s string) string {
		if dots == "" {
			return s
		}
		return strings.ReplaceAll(s, ".", dots)
	}
	var timeKey string
	if o.TimeKey != "" {
		timeKey = rename(o.TimeKey)
	}
	type want struct {
		key   string
		field *msgpField
	}
	var wants []want
	trouble := false
	for i := range fields {
		fl := &fields[i]
		if len(o.DataKeys) > 0 && (!fl.named || !slices.Contains(o.DataKeys, fl.name)) {
			continue
		}
		trouble = trouble || fl.troublesome()
		key := rename(fl.keyText)
		if timeKey != "" && key == timeKey {
			continue
		}
		wants = append(wants, want{key: key, field: fl})
	}
	if f.err != "" {
		if trouble && (f.err == ErrTooDeep.Error() || f.err == ErrNestedKey.Error()) {
			return ""
		}
		return "unexpected error " + f.err
	}
	if trouble {
		return "encoded a record that nests too deep or has a key inside a key"
	}
	if msg := checkCanonical(data); msg != "" {
		return msg
	}
	got, err := jsonFields(data)
	if err != nil {
		return err.Error()
	}
	if timeKey != "" {
		layout, ok := goTimeLayout[o.TimeFormat.Pattern()]
		if !ok {
			return "no Go layout for " + o.TimeFormat.Pattern()
		}
		stamp, _ := json.Marshal(ev.time.UTC().Format(layout))
		if len(got) == 0 || got[len(got)-1].key != timeKey || string(got[len(got)-1].value) != string(stamp) {
			return fmt.Sprintf("last field is not %q: %s", timeKey, stamp)
		}
		got = got[:len(got)-1]
	}
	if len(got) != len(wants) {
		return fmt.Sprintf("%d fields, want %d: %s", len(got), len(wants), data)
	}
	for i, w := range wants {
		if got[i].key != w.key {
			return fmt.Sprintf("field %d is %q, want %q", i, got[i].key, w.key)
		}
		if msg := sameJSON(w.field.value, got[i].value, dots); msg != "" {
			return fmt.Sprintf("field %q: %s", w.key, msg)
		}
	}
	return ""
}

func checkLogKey(fields []msgpField, f frame, data []byte, o Options) string {
	for _, fl := range fields {
		if !fl.named || fl.name != o.LogKey {
			continue
		}
		if f.err != "" {
			return "unexpected error " + f.err
		}
		switch msgp.NextType(fl.value) {
		case msgp.StrType, msgp.BinType:
			raw, _, err := msgp.ReadBytesZC(fl.value)
			if err != nil {
				s, _, _ := msgp.ReadStringZC(fl.value)
				raw = s
			}
			if !bytes.Equal(data, raw) {
				return fmt.Sprintf("got %q, want the raw value %q", data, raw)
			}
			return ""
		}
		if msg := checkCanonical(data); msg != "" {
			return msg
		}
		return sameJSON(fl.value, data, o.ReplaceDots)
	}
	if f.err != ErrMissingLogKey.Error() {
		return fmt.Sprintf("no %q key: got %q, %q, want %v", o.LogKey, f.data, f.err, ErrMissingLogKey)
	}
	return ""
}

// checkCanonical checks that js is written as encoding/json writes it (compact,
// same escapes, HTML characters not escaped), except that U+2028, U+2029 and
// U+FFFD are written as they are rather than as escapes.
func checkCanonical(js []byte) string {
	want, err := reencodeJSON(js, nil)
	if err != nil {
		return err.Error()
	}
	for _, r := range []string{`\u2028`, `\u2029`, `\ufffd`} {
		u, _ := strconv.Unquote(`"` + r + `"`)
		want = strings.ReplaceAll(want, r, u)
	}
	if want != string(js) {
		return fmt.Sprintf("not written as encoding/json writes it:\n got %s\nwant %s", js, want)
	}
	return ""
}

// reencodeJSON writes the JSON value js again with encoding/json, token by token,
// so that the order and repetitions of keys are kept; rename, when not nil,
// changes every object key at any depth.
func reencodeJSON(js []byte, rename func(string) string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	// For each open object or array: whether it is an object, and how many
	// tokens (keys and values) it has had so far.
	type level struct {
		object bool
		n      int
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		isKey := false
		if d, ok := tok.(json.Delim); len(stack) > 0 && (!ok || d == '{' || d == '[') {
			l := &stack[len(stack)-1]
			switch {
			case l.object && l.n%2 == 1:
				out.WriteByte(':')
			case l.n > 0:
				out.WriteByte(',')
			}
			isKey = l.object && l.n%2 == 0
			l.n++
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			switch v {
			case '{':
				stack = append(stack, level{object: true})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case json.Number:
			out.WriteString(string(v))
			continue
		case string:
			if isKey && rename != nil {
				tok = rename(v)
			}
		}
		if err := enc.Encode(tok); err != nil {
			return "", err
		}
		out.Truncate(out.Len() - 1) // Encode's newline
	}
	return out.String(), nil
}
