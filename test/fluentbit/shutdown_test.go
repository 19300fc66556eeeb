package fluentbit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// TestSIGTERMInFlight stops Fluent Bit with SIGTERM while the plugin waits
// for a slow endpoint (every PutRecords answered after latency), with
// records still to send: nothing may be lost within Grace. Fluent Bit must
// exit 0 with every record in the stream exactly once; with workers, before
// Grace is over. With workers 0 the flushes run on the engine thread, which
// sees the signal only once they return, so Grace starts late: how long it
// took is reported, not checked.
func TestSIGTERMInFlight(t *testing.T) {
	needFluentBit(t)
	const (
		records = 3000 // 4 files: 4 chunks of 750 records, 2 requests each
		grace   = 10
		latency = 600 * time.Millisecond
	)
	for _, workers := range []int{0, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			w := want{}
			spread(t, filepath.Join(e.dir, "app"), "app", 4, 0, records, w)
			stream := newStream(t, 2)
			proxy := newProxy(t, kinesismock.Faults{Latency: latency})
			proc := e.startClassic(t, pipeline{
				service: e.service(grace),
				inputs:  []props{e.tail("app")},
				outputs: []props{output("app.*", stream, proxy.URL, [2]string{"workers", strconv.Itoa(workers)})},
			})
			waitFor(t, "every record read and a request in flight", deliverTimeout, proc, func() bool {
				st := proxy.Stats()
				return inputRecords(e.port) == records && st.Requests > st.Forwarded
			})
			before := proxy.Stats()
			took := stop(t, proc, grace*time.Second)
			t.Logf("SIGTERM with %d records accepted and %d requests sent: exit after %v", before.Accepted, before.Requests, took.Round(time.Millisecond))
			if before.Accepted >= records {
				t.Fatalf("every record was accepted before SIGTERM: the test proves nothing")
			}
			if workers > 0 && took >= grace*time.Second {
				t.Errorf("fluent-bit took %v to exit, its Grace is %ds", took, grace)
			}
			checkExactlyOnce(t, stream, w)
			checkLog(t, proc.Stderr())
		})
	}
}

// TestFilesystemBuffering buffers records on disk (storage.type filesystem)
// while the endpoint answers every PutRecords with a 500, stops Fluent Bit
// with SIGTERM, and starts it again on the same storage and offsets with the
// endpoint working: every record must arrive, exactly once (the first run
// delivers nothing, so nothing can be sent twice).
func TestFilesystemBuffering(t *testing.T) {
	needFluentBit(t)
	const (
		records = 1000
		grace   = 3
	)
	e := newEnv(t)
	w := want{}
	spread(t, filepath.Join(e.dir, "app"), "app", 2, 0, records, w)
	stream := newStream(t, 2)
	proxy := newProxy(t, kinesismock.Faults{HTTP500: 1})
	storage := filepath.Join(e.dir, "storage")
	p := pipeline{
		service: e.service(grace, [2]string{"storage.path", storage}, [2]string{"storage.sync", "full"}),
		inputs:  []props{e.tail("app", [2]string{"storage.type", "filesystem"})},
		outputs: []props{output("app.*", stream, proxy.URL,
			[2]string{"workers", "1"}, [2]string{"Retry_Limit", "no_limits"})},
	}

	first := e.startClassic(t, p)
	if err := poll(deliverTimeout, first, func() bool {
		return inputRecords(e.port) == records && proxy.Stats().HTTP500 > 0
	}); err != nil {
		if strings.Contains(first.Stderr(), noBacklog) {
			t.Skipf("this Fluent Bit build has no storage_backlog input, without which it refuses storage.path (%q): "+
				"filesystem buffering cannot run", noBacklog)
		}
		t.Fatalf("waiting for every record read and PutRecords refused: %v", err)
	}
	stop(t, first, grace*time.Second)
	if st := proxy.Stats(); st.Accepted != 0 {
		t.Fatalf("%d records accepted while the endpoint refused everything", st.Accepted)
	}
	chunks := chunkFiles(t, storage)
	if chunks == 0 {
		t.Fatalf("no chunk files under %s after the first run", storage)
	}
	t.Logf("first run: %d PutRecords refused; %d chunk files left on disk", proxy.Stats().HTTP500, chunks)

	proxy.SetFaults(kinesismock.Faults{})
	second := e.startClassic(t, p)
	waitAccepted(t, proxy, records, second)
	stop(t, second, grace*time.Second)
	d := checkExactlyOnce(t, stream, w)
	t.Logf("second run: %d records read back, %d duplicates; %d chunk files left", d.read, d.duplicates, chunkFiles(t, storage))
	checkLog(t, first.Stderr())
	checkLog(t, second.Stderr())
}

// noBacklog is what Fluent Bit logs when it was built without the
// storage_backlog input (FLB_MINIMAL builds), and so cannot use storage.path.
const noBacklog = "cannot init storage backlog input plugin"

// chunkFiles counts Fluent Bit's chunk files (*.flb) under dir.
func chunkFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".flb") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
