package chunk

import (
	"strconv"
	"strings"
)

// LogRecord returns a container-log shaped record, unique per (source, seq),
// whose strings exercise JSON escaping (quote, backslash, \n, \t, \r, control
// characters), '/', '<', '&', multi-byte UTF-8 (including U+2028), invalid
// UTF-8, and whose values cover every msgpack width: ints beyond int64,
// negative ints, bools, nil, nested and empty maps, arrays, maps and arrays
// of more than 15 entries. pad adds a field of pad bytes.
func LogRecord(source string, seq int, pad int) Map {
	s := strconv.Itoa(seq)
	log := source + " " + s + " GET /api/v1/items?id=" + s + "&sort=asc HTTP/1.1 200"
	switch seq % 5 {
	case 0:
		log += " quote\" back\\slash\ttab\nnewline\x01ctl\x10ctl\rcr"
	case 1:
		log += " héllo wörld — 日本語 🚀 \u2028\u2029 ü"
	case 2:
		log += ` </script> & 'single' {"json": [1, 2]}`
	}
	if seq%50 == 3 {
		log += " invalid utf-8 \xff\xfe here"
	}
	stream := "stdout"
	if seq%3 == 0 {
		stream = "stderr"
	}
	labels := Map{{"app", "web"}, {"pod-template-hash", "7d9f8c6b5"}}
	if seq%10 == 7 {
		for i := 0; len(labels) < 17; i++ {
			labels = append(labels, Field{"label/" + strconv.Itoa(i), "v" + strconv.Itoa(i)})
		}
	}
	var trace any
	if seq%4 == 1 {
		trace = []any{"span", int64(seq), true, Map{{"depth", int64(2)}}, nil}
	}
	if seq%20 == 9 {
		arr := make([]any, 0, 18)
		for i := range 18 {
			arr = append(arr, int64(i*1000-5000))
		}
		trace = arr
	}
	m := Map{
		{"log", log},
		{"stream", stream},
		{"seq", int64(seq)},
		{"kubernetes", Map{
			{"pod_name", "web-" + source + "-5c7b9"},
			{"namespace_name", "default"},
			{"container_name", "app"},
			{"labels", labels},
			{"annotations", Map{}},
		}},
		{"partial", seq%2 == 0},
		{"offset", uint64(1<<63) + uint64(seq)},
		{"delta", int64(-1000*seq - 1)},
		{"trace", trace},
	}
	if seq%7 == 2 {
		m = append(m, Field{"wéird \"key\"\t/", "x"})
	}
	if pad > 0 {
		m = append(m, Field{"payload", strings.Repeat("0123456789abcdef", pad/16+1)[:pad]})
	}
	return m
}

// LogEvents returns n events of LogRecord(source, first+i, pad), one
// millisecond apart from a fixed time.
func LogEvents(source string, first, n, pad int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		seq := first + i
		evs[i] = Event{
			Sec:    1_764_000_000 + uint32(seq/1000),
			Nsec:   uint32(seq%1000) * 1_000_000,
			Record: LogRecord(source, seq, pad),
		}
	}
	return evs
}

// ContainerRecord returns a record as Fluent Bit's tail input with the docker (json) parser makes
// of a container's log line: "log" (the application's line with its newline, 300 to 340 bytes,
// quoting a user agent), "stream" and "time". Unlike LogRecord, it is shaped like common traffic,
// not like every corner of msgpack and JSON.
func ContainerRecord(seq int) Map {
	s := strconv.Itoa(seq)
	status := [...]string{"200", "200", "200", "201", "204", "304", "404", "500"}[seq%8]
	line := "2026-11-26T08:" + pad2(seq/60000%60) + ":" + pad2(seq/1000%60) + "." + pad3(seq%1000) +
		"Z INFO  [http-nio-8080-exec-" + strconv.Itoa(seq%16) + "] c.example.api.ItemsController - " +
		"GET /api/v1/items?id=" + s + "&sort=asc&page=" + strconv.Itoa(seq%7) + " status=" + status +
		" bytes=" + strconv.Itoa(512+seq%9000) + " duration_ms=" + strconv.Itoa(seq%250) +
		" client=10.42." + strconv.Itoa(seq%256) + "." + strconv.Itoa(seq*7%256) +
		` user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"` +
		" request_id=7f3a9c2e-" + strconv.Itoa(100000+seq%900000) + "\n"
	stream := "stdout"
	if seq%10 == 9 {
		stream = "stderr"
	}
	return Map{
		{"log", line},
		{"stream", stream},
		{"time", "2026-11-26T08:" + pad2(seq/60000%60) + ":" + pad2(seq/1000%60) + "." + pad3(seq%1000) + "123456Z"},
	}
}

// ContainerEvents returns n events of ContainerRecord(first+i), one millisecond apart.
func ContainerEvents(first, n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		seq := first + i
		evs[i] = Event{Sec: 1_764_144_000 + uint32(seq/1000), Nsec: uint32(seq%1000) * 1_000_000, Record: ContainerRecord(seq)}
	}
	return evs
}

func pad2(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }
func pad3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
