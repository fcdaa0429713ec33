// Package job holds the data that travels between the Helios stages and the
// rules that apply to it: the job spec in its two forms, validation, planning
// frame ranges into chunks, the worker and stitcher payloads, job status, the
// typed error that crosses every transport, and the storage keys.
//
// It does no I/O and imports nothing else of this module, so every other
// package can depend on it.
package job
