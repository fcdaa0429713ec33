// Package job holds the data that travels between the Helios stages and the
// rules that apply to it: the job spec in its two forms, its validation,
// planning frame ranges into chunks, the worker and stitcher payloads, job
// status, history and usage.
//
// It does no I/O. Where a job's objects are stored is pkg/layout's, and the
// typed error that crosses every transport is pkg/joberr's; job imports
// those, pkg/framerate and pkg/ffargs, and nothing else of this module, so
// every other package can depend on it.
package job
