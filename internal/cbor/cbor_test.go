package cbor

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	smithycbor "github.com/aws/smithy-go/encoding/cbor"
)

// TestHead compares the heads with smithy-go's, at every boundary of their length.
func TestHead(t *testing.T) {
	t.Parallel()
	for _, n := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		want := smithycbor.Encode(smithycbor.Uint(n))
		got := AppendHead(nil, MajorUint, n)
		if !bytes.Equal(got, want) || HeadLen(n) != len(want) {
			t.Errorf("head of %d: %x (length %d), smithy-go %x", n, got, HeadLen(n), want)
		}
		if arr := AppendHead(nil, MajorArray, n); arr[0] != want[0]|MajorArray || !bytes.Equal(arr[1:], want[1:]) {
			t.Errorf("array head of %d: %x", n, arr)
		}
	}
}

// TestText: a valid string is written as smithy-go writes it; invalid UTF-8 gets U+FFFD; TextLen
// is the length written; the Reader reads back what was written.
func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"ascii", "partition-1", "partition-1"},
		{"multibyte", "clé ☃", "clé ☃"},
		{"long", strings.Repeat("k", 300), strings.Repeat("k", 300)},
		{"invalid byte", "a\xffb", "a\uFFFDb"},
		{"cut rune", "\xe2\x98", "\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendText(nil, tt.in)
			if want := smithycbor.Encode(smithycbor.String(tt.want)); !bytes.Equal(got, want) {
				t.Errorf("AppendText(%q) = %x, smithy-go %x", tt.in, got, want)
			}
			if n := TextLen(tt.in); n != len(got) {
				t.Errorf("TextLen(%q) = %d, wrote %d", tt.in, n, len(got))
			}
			r := NewReader(got)
			if s, err := r.Text(); err != nil || s != tt.want || !r.Done() {
				t.Errorf("read back %q, %v (done %v)", s, err, r.Done())
			}
		})
	}
}

// TestSkip: Skip reads exactly one item of whatever smithy-go writes, nested and tagged; an item
// cut short, or nested deeper than MaxDepth, is a *SyntaxError that says where.
func TestSkip(t *testing.T) {
	t.Parallel()
	item := smithycbor.Encode(smithycbor.Map{
		"uint":  smithycbor.Uint(math.MaxUint64),
		"neg":   smithycbor.NegInt(7),
		"bytes": smithycbor.Slice("\x00\x01"),
		"list":  smithycbor.List{smithycbor.Bool(true), &smithycbor.Nil{}, &smithycbor.Undefined{}, smithycbor.Float32(1.5), smithycbor.Float64(-2)},
		"tag":   &smithycbor.Tag{ID: 1, Value: smithycbor.Uint(1700000000)},
		"map":   smithycbor.Map{"inner": smithycbor.List{}},
	})
	r := NewReader(append(item, item...))
	for i := range 2 {
		if err := r.Skip(); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if !r.Done() {
		t.Error("not at the end after two items")
	}
	for cut := range len(item) {
		r := NewReader(item[:cut])
		var se *SyntaxError
		if err := r.Skip(); !errors.As(err, &se) || se.Offset > cut {
			t.Errorf("cut at %d: error %v, want a *SyntaxError at or before the cut", cut, err)
		}
	}
	nested := func(n int) []byte { return append(bytes.Repeat([]byte{MajorArray | 1}, n), 0) }
	if r := NewReader(nested(MaxDepth)); r.Skip() != nil || !r.Done() {
		t.Errorf("nested %d deep: not read", MaxDepth)
	}
	if r := NewReader(nested(MaxDepth + 1)); r.Skip() == nil {
		t.Errorf("nested %d deep: no error", MaxDepth+1)
	}
}

// TestIndefinite: strings, arrays and maps of indefinite length read as their definite forms.
func TestIndefinite(t *testing.T) {
	t.Parallel()
	// {_ "k": [_ "a", (_ "b", "c")]}
	b := []byte("\xbf\x61k\x9f\x61a\x7f\x61b\x61c\xff\xff\xff")
	r := NewReader(b)
	var got []string
	err := r.Object(func(key string) error {
		got = append(got, key)
		n, _, err := r.Container(MajorArray)
		for i := 0; err == nil; i++ {
			var more bool
			if more, err = r.More(i, n); !more {
				break
			}
			var s string
			s, _, err = r.TextOrNull()
			got = append(got, s)
		}
		return err
	})
	if err != nil || !r.Done() || strings.Join(got, ",") != "k,a,bc" {
		t.Errorf("read %q, %v (done %v); want k, a, bc", got, err, r.Done())
	}
}

// TestShortText: text strings of definite length under 256 bytes are read in place; anything
// else, or a string cut short, is left unread.
func TestShortText(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 23, 24, 255} {
		s := strings.Repeat("k", n)
		r := NewReader(append(AppendText(nil, s), 0x01))
		got, ok := r.ShortText()
		if !ok || got != s || r.Offset() != HeadLen(uint64(n))+n {
			t.Errorf("%d bytes: %q, %v, at %d", n, got, ok, r.Offset())
		}
	}
	for _, b := range []string{
		string(AppendText(nil, strings.Repeat("k", 256))), // a 2-byte length
		"\x7f\x61k\xff", // indefinite
		"\x41k",         // a byte string
		"\xc0\x61k",     // tagged
		"\x78",          // no length
		"\x78\x05kk",    // cut short
		"\x65kk",        // cut short
		"",
	} {
		r := NewReader([]byte(b))
		if s, ok := r.ShortText(); ok || r.Offset() != 0 {
			t.Errorf("%x: read %q, %v, to %d; want nothing read", b, s, ok, r.Offset())
		}
	}
}
