package main

import (
	"strings"
	"testing"
)

// TestFlushMode: flushes yield by default where the host can, and hold their worker with
// partition_key, where the host cannot, or when FlushModeEnv says block; a bad value warns and
// leaves the default. Every case that holds says why.
func TestFlushMode(t *testing.T) {
	for _, c := range []struct {
		env                    string
		canYield, partitionKey bool
		yields                 bool
		info, warning          string // substrings, "" for none
	}{
		{env: "", canYield: true, yields: true},
		{env: "yield", canYield: true, yields: true},
		{env: "block", canYield: true, info: "=block"},
		{env: "", canYield: true, partitionKey: true, info: "partition_key"},
		{env: "", canYield: false, info: "does not export"},
		{env: "Block", canYield: true, yields: true, warning: `"Block"`},
		{env: "nope", canYield: false, info: "does not export", warning: `"nope"`},
	} {
		t.Setenv(FlushModeEnv, c.env)
		yields, info, warning := flushMode(c.canYield, c.partitionKey)
		if yields != c.yields || (c.info == "") != (info == "") || !strings.Contains(info, c.info) ||
			(c.warning == "") != (warning == "") || !strings.Contains(warning, c.warning) {
			t.Errorf("%s=%q, host can yield %v, partition_key %v: yields %v, info %q, warning %q; want %v, %q, %q",
				FlushModeEnv, c.env, c.canYield, c.partitionKey, yields, info, warning, c.yields, c.info, c.warning)
		}
	}
}
