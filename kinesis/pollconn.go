package kinesis

import (
	"net/http"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pollconn"
)

// pollDirectConns makes tr dial connections that wait in poll(2) on the calling thread (package
// pollconn) when requests to o's endpoint reach it directly: the plugin's transport reads a
// connection only while it awaits an answer, and on Fluent Bit's threads a wait in the Go
// runtime's network poller costs thread hand-offs. Through a proxy, net/http's transport carries
// the requests and reads every idle connection, which would hold a thread each: its connections
// stay the network poller's.
func pollDirectConns(tr *http.Transport, o Options) {
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = "https://kinesis." + o.Region + ".amazonaws.com"
	}
	if tr.Proxy != nil {
		req, err := http.NewRequest(http.MethodPost, endpoint, nil)
		if err != nil {
			return
		}
		if proxy, err := tr.Proxy(req); err != nil || proxy != nil {
			return
		}
	}
	tr.DialContext = pollconn.Dialer(tr.DialContext)
}
