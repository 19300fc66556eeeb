//go:build race

package pollconn

// raceDetector is true under the race detector, which learns that what a goroutine wrote to a
// socket happens before what another read from it through annotations in internal/poll: the
// reads and writes of this package's connections have none, so that the detector would report
// races between every server and client of a test. Under it, Dialer hands out the connections
// it dials as they are.
const raceDetector = true
