// Package kpl deaggregates KPL aggregated Kinesis records for the end-to-end
// tests with AWS Labs' Node.js deaggregator (the npm package aws-kinesis-agg,
// run by test/kpl/deaggregate.js): an implementation independent of the
// plugin's, which checks the magic, the protobuf and the MD5. It is test
// support only: nothing outside test/ imports it.
package kpl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Magic starts every KPL aggregated record.
var Magic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// ErrNotInstalled means node or the npm package is missing.
var ErrNotInstalled = errors.New("kpl: node and aws-kinesis-agg are needed: run `npm ci` in test/")

// UserRecord is one record a consumer gets from a Kinesis record: a user
// record of an aggregate, or the Kinesis record itself when it is not one.
type UserRecord struct {
	Record          int     // index of the Kinesis record it came from
	SubSequence     int     // position in its aggregate
	Aggregated      bool    // whether the Kinesis record was an aggregate
	PartitionKey    *string // nil when the deaggregator gave none
	ExplicitHashKey *string // nil when the record has none
	Data            []byte
}

// line is one line of deaggregate.js's output.
type line struct {
	Record          int     `json:"record"`
	SubSequence     int     `json:"subSequence"`
	Aggregated      bool    `json:"aggregated"`
	PartitionKey    *string `json:"partitionKey"`
	ExplicitHashKey *string `json:"explicitHashKey"`
	Data            string  `json:"data"`
}

// Deaggregate runs testDir/kpl/deaggregate.js on the data of records, with
// testDir/node_modules, and returns every user record in order. A record
// that does not start with Magic comes back as one user record with
// Aggregated false (and the deaggregator's partition key, nil here since
// the script is given data only). An aggregate that the deaggregator
// rejects (bad protobuf, bad MD5) is an error.
func Deaggregate(ctx context.Context, testDir string, records [][]byte) ([]UserRecord, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w (node: %v)", ErrNotInstalled, err)
	}
	script, err := filepath.Abs(filepath.Join(testDir, "kpl", "deaggregate.js"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(testDir, "node_modules", "aws-kinesis-agg", "package.json")); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotInstalled, err)
	}
	var in bytes.Buffer
	for _, r := range records {
		in.WriteString(base64.StdEncoding.EncodeToString(r))
		in.WriteByte('\n')
	}
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kpl: node %s: %w\n%s", script, err, stderr.Bytes())
	}
	var out []UserRecord
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("kpl: deaggregate.js printed %.200q: %w", sc.Bytes(), err)
		}
		data, err := base64.StdEncoding.DecodeString(l.Data)
		if err != nil {
			return nil, fmt.Errorf("kpl: deaggregate.js printed data that is not base64: %w", err)
		}
		out = append(out, UserRecord{
			Record:          l.Record,
			SubSequence:     l.SubSequence,
			Aggregated:      l.Aggregated,
			PartitionKey:    l.PartitionKey,
			ExplicitHashKey: l.ExplicitHashKey,
			Data:            data,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kpl: reading deaggregate.js output: %w", err)
	}
	return out, nil
}
