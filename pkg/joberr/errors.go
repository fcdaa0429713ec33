// Package joberr is the typed error of a Helios job (Error: whether an
// attempt is worth repeating, a code, the chunk, the command's exit code
// and the tail of its stderr) and its wire form, which survives Lambda's
// errorType/errorMessage and HTTP error bodies; a spec's problems
// (ValidationError); and the shortening of long values in messages.
package joberr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind tells the orchestrator whether an attempt is worth repeating.
type Kind string

// Error kinds.
const (
	// Retryable: throttling, timeouts, a lost worker, a command failure that
	// may not repeat. Retried with backoff up to retry.maxAttempts.
	Retryable Kind = "retryable"
	// Permanent: a bad payload, a command not allowed. Never retried.
	Permanent Kind = "permanent"
)

// Error codes carried by Error.
const (
	CodeInvalid         = "invalid"              // payload failed validation
	CodeNotAllowed      = "command_not_allowed"  // program not on the allowlist
	CodeCommandFailed   = "command_failed"       // non-zero exit
	CodeTimeout         = "timeout"              // the chunk ran past its timeout
	CodeFrameMismatch   = "frame_mismatch"       // segment has the wrong frame count
	CodeMissingOutput   = "missing_output"       // the command wrote no segment
	CodeIncompatible    = "incompatible_segment" // a segment cannot be joined with chunk 0's (codec, size, timescale)
	CodeBadAssets       = "bad_assets"           // asset bundle missing, corrupt or unsafe
	CodeStorage         = "storage"              // reading or writing the bucket failed
	CodeThrottled       = "throttled"            // the platform refused for capacity
	CodeTransport       = "transport"            // the invocation did not complete
	CodeWorkerLost      = "worker_lost"          // the function crashed or was killed
	CodePayloadTooLarge = "payload_too_large"    // over the platform's payload limit
	CodeCancelled       = "cancelled"
	CodeBudgetExceeded  = "budget_exceeded" // the job reached its budget; its finished chunks are kept
	CodeInternal        = "internal"
)

// ErrorType is the Lambda errorType (and Cloud Run error body marker) of an
// Error: its errorMessage is the Error as JSON, so kind, code, exit code and
// stderr tail survive every transport.
const ErrorType = "HeliosError"

// Error is the typed error that crosses transports.
type Error struct {
	Kind       Kind   `json:"kind"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Chunk      *int   `json:"chunk,omitempty"`
	ExitCode   int    `json:"exitCode,omitempty"`
	StderrTail string `json:"stderrTail,omitempty"`
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Chunk != nil {
		msg = fmt.Sprintf("chunk %d: %s", *e.Chunk, msg)
	}
	if e.StderrTail != "" {
		msg += "\n" + e.StderrTail
	}
	return msg
}

// Retryable reports whether the attempt may be repeated.
func (e *Error) Retryable() bool { return e.Kind == Retryable }

// Errorf makes an Error. Long values in the message are shortened
// (ShortenWords): it goes into logs and the job's status.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: ShortenWords(fmt.Sprintf(format, args...))}
}

// WithChunk returns a copy of e naming a chunk.
func (e *Error) WithChunk(index int) *Error {
	c := *e
	c.Chunk = &index
	return &c
}

// AsError converts any error into an *Error for the wire. Validation errors
// are permanent; context errors and unknown errors are retryable, since only
// a typed error can promise that repeating is useless.
func AsError(err error) *Error {
	var e *Error
	var ve *ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		return &Error{Kind: Permanent, Code: CodeInvalid, Message: ve.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: Retryable, Code: CodeCancelled, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: Retryable, Code: CodeTimeout, Message: err.Error()}
	}
	return &Error{Kind: Retryable, Code: CodeInternal, Message: err.Error()}
}

// IsRetryable reports whether err is worth another attempt.
func IsRetryable(err error) bool { return err != nil && AsError(err).Retryable() }

// MarshalWire encodes an error as the JSON errorMessage of a HeliosError.
func MarshalWire(err error) string {
	b, _ := json.Marshal(AsError(err))
	return string(b)
}

// UnmarshalWire decodes a HeliosError errorMessage; ok is false if msg is not one.
func UnmarshalWire(msg string) (*Error, bool) {
	var e Error
	if json.Unmarshal([]byte(msg), &e) != nil || (e.Kind != Retryable && e.Kind != Permanent) {
		return nil, false
	}
	return &e, true
}

// DecodeFunctionError turns a function error reported by a platform (Lambda's
// errorType and errorMessage) back into an *Error. Anything that is not a
// HeliosError — a crash, an out-of-memory kill, a runtime timeout — means the
// worker was lost, which is worth another attempt.
func DecodeFunctionError(errorType, message string) *Error {
	if errorType == ErrorType {
		if e, ok := UnmarshalWire(message); ok {
			return e
		}
	}
	return Errorf(Retryable, CodeWorkerLost, "function failed: %s: %s", errorType, message)
}
