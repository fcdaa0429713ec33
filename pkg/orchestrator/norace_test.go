//go:build !race

package orchestrator_test

// raceDetector is whether the tests run with the race detector, which
// makes a 10,000-chunk simulation several times slower.
const raceDetector = false
