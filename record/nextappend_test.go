package record

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// step is what one call of NextAppend, or of Next then Append, gave.
type step struct {
	ok      bool
	out     string
	err     string
	sec     int64
	nsec    uint32
	body    string
	bodyCap int
}

// viaNext runs Next then Append over chunk, as the batcher did before NextAppend.
func viaNext(e *Encoder, chunk []byte) ([]step, string, int) {
	var d Decoder
	var ev Event
	d.Reset(chunk)
	var steps []step
	for {
		if !d.Next(&ev) {
			steps = append(steps, step{})
			break
		}
		out, err := e.Append([]byte("pre"), &ev)
		steps = append(steps, stepOf(out, err, &ev))
	}
	return steps, errString(d.Err()), d.Offset()
}

// viaNextAppend runs NextAppend over chunk.
func viaNextAppend(e *Encoder, chunk []byte) ([]step, string, int) {
	var d Decoder
	var ev Event
	d.Reset(chunk)
	var steps []step
	for {
		out, ok, err := d.NextAppend(e, []byte("pre"), &ev)
		if !ok {
			if string(out) != "pre" || err != nil {
				steps = append(steps, step{out: "end with " + string(out), err: errString(err)})
			}
			steps = append(steps, step{})
			break
		}
		steps = append(steps, stepOf(out, err, &ev))
	}
	return steps, errString(d.Err()), d.Offset()
}

func stepOf(out []byte, err error, ev *Event) step {
	return step{ok: true, out: string(out), err: errString(err), sec: ev.Sec, nsec: ev.Nsec, body: string(ev.Body), bodyCap: cap(ev.Body)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestNextAppendMatchesNextThenAppend checks that NextAppend gives, call by call, what Next then
// Append give: the events, their encodings and errors, the decoding error and where it stops.
// Chunks: the golden corpus, each cut at many offsets and with bytes changed at random, and
// records that are not maps, too deep, or with nested keys, with every option set.
func TestNextAppendMatchesNextThenAppend(t *testing.T) {
	t.Parallel()
	var chunks [][]byte
	for _, c := range goldenChunks {
		chunks = append(chunks, c.build())
	}
	var w mp
	w = w.arr(2).arr(2).eventTime(1, 2).map_(0).str("not a map")
	w = w.arr(2).arr(2).eventTime(3, 4).map_(0).map_(1).arr(1).arr(1).map_(0).str("nested key")
	w = w.arr(2).arr(2).eventTime(5, 6).map_(0).map_(1).str("deep")
	for range 1100 {
		w = w.arr(1)
	}
	w = w.nil_()
	w = w.arr(2).arr(2).eventTime(7, 8).map_(0).map_(1).str("log").str("last")
	chunks = append(chunks, w)

	rng := rand.New(rand.NewPCG(3, 4))
	var cases [][]byte
	for _, c := range chunks {
		cases = append(cases, c)
		for k := range 40 {
			cases = append(cases, c[:k*len(c)/40])
			mutated := bytes.Clone(c)
			for range 1 + rng.IntN(4) {
				mutated[rng.IntN(len(mutated))] = byte(rng.Uint32())
			}
			cases = append(cases, mutated)
		}
	}
	for _, s := range goldenOptions(t) {
		e := NewEncoder(s.opts)
		for i, c := range cases {
			want, wantErr, wantOff := viaNext(e, c)
			got, gotErr, gotOff := viaNextAppend(e, c)
			if wantErr != gotErr || wantOff != gotOff {
				t.Fatalf("%s, case %d: NextAppend stopped at %d with %q; Next at %d with %q", s.name, i, gotOff, gotErr, wantOff, wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("%s, case %d: %d steps, want %d", s.name, i, len(got), len(want))
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("%s, case %d, event %d:\n got %+v\nwant %+v", s.name, i, k, got[k], want[k])
				}
			}
		}
	}
	// The corpus must hold each kind of outcome, or the comparison proves little.
	e := NewEncoder(Options{AppendNewline: true})
	var ok, failed, stopped bool
	for _, c := range cases {
		steps, decErr, _ := viaNext(e, c)
		stopped = stopped || decErr != ""
		for _, st := range steps {
			ok = ok || st.ok && st.err == ""
			failed = failed || st.err != ""
		}
	}
	if !ok || !failed || !stopped {
		t.Fatalf("corpus: encoded %v, encoding errors %v, decoding errors %v: want all", ok, failed, stopped)
	}
}
