//go:build !race

package storage_test

// raceDetector is whether the tests run with the race detector, which
// makes the in-process test servers several times slower.
const raceDetector = false
