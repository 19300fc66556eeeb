package kinesismock

import (
	"encoding/json"
	"strings"
	"testing"
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
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, err := json.Marshal(map[string]any{"StreamName": "s", "Records": tt.records})
			if err != nil {
				t.Fatal(err)
			}
			p := &LimitProxy{maxRecordSize: DefaultMaxRecordSize}
			got := p.check(body)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("check = %q, want %q", got, tt.want)
			}
			if n := len(p.Violations()); (n == 1) != (tt.want != "") {
				t.Errorf("%d violations recorded", n)
			}
		})
	}
}
