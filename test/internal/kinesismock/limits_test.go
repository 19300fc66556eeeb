package kinesismock

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

func TestLimitProxyCheck(t *testing.T) {
	t.Parallel()
	type rec struct {
		Data         []byte
		PartitionKey string
	}
	many := func(n, size int, key string) []rec {
		rs := make([]rec, n)
		for i := range rs {
			rs[i] = rec{make([]byte, size), key}
		}
		return rs
	}
	tests := []struct {
		name    string
		records []rec
		want    string // substring of the problem, "" for none
	}{
		{"ok", many(500, 100, "k"), ""},
		{"exactly 10 MiB", many(10, 1<<20-1, "k"), ""},
		{"501 records", many(501, 1, "k"), "501 records"},
		{"no records", nil, "0 records"},
		{"over 10 MiB", many(11, 1<<20-1, "k"), "more than the limit"},
		{"record over 1 MiB", many(1, 1<<20, "k"), "more than the record limit"},
		{"empty key", many(1, 1, ""), "partition key of 0"},
		{"257-char key", many(1, 1, strings.Repeat("é", 257)), "partition key of 257"},
		{"256-char key", many(1, 1, strings.Repeat("é", 256)), ""},
	}
	for _, tt := range tests {
		for _, isCBOR := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s cbor=%v", tt.name, isCBOR), func(t *testing.T) {
				t.Parallel()
				body, err := json.Marshal(map[string]any{"StreamName": "s", "Records": tt.records})
				if err != nil {
					t.Fatal(err)
				}
				if isCBOR {
					recs := cbor.List{}
					for _, r := range tt.records {
						recs = append(recs, cbor.Map{"Data": cbor.Slice(r.Data), "PartitionKey": cbor.String(r.PartitionKey)})
					}
					body = cbor.Encode(cbor.Map{"StreamName": cbor.String("s"), "Records": recs})
				}
				p := &LimitProxy{maxRecordSize: DefaultMaxRecordSize}
				got := p.check(body, isCBOR)
				if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
					t.Errorf("check = %q, want %q", got, tt.want)
				}
				if n := len(p.Violations()); (n == 1) != (tt.want != "") {
					t.Errorf("%d violations recorded", n)
				}
			})
		}
	}
}
