//go:build !race

package pollconn

// raceDetector: see race.go.
const raceDetector = false
