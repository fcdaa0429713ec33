// Package adapter carries worker and stitcher invocations to wherever the
// functions run. Adapter is the one portable type, with Execute(ctx,
// WorkerJob) and Stitch(ctx, StitchRequest); a Driver per platform moves
// the bytes: Local in process, Lambda over the Lambda Invoke API, CloudRun
// over HTTPS with an identity token. Every driver passes the same
// conformance suite, adaptertest.RunConformance.
//
// Errors come back typed: a *joberr.Error whose Kind says whether another
// attempt can help, or the context's error when the caller gave up.
package adapter

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// Function names a deployed function.
type Function string

// The functions an orchestrator invokes, by the names pkg/job gives them
// (in HELIOS_SIZES and the job's usage): one name for each kind.
const (
	Worker   Function = job.FunctionWorker
	Stitcher Function = job.FunctionStitcher
	// BrowserWorker is a worker with Chromium, Node and the Helios renderer
	// (renderers/helios), for jobs that run `helios`: a bigger image on
	// x86_64 Lambda, so ffmpeg-only jobs keep the small arm64 worker. A
	// driver without one sends those jobs to Worker.
	BrowserWorker Function = job.FunctionBrowserWorker
)

// MaxPayload is Lambda's limit for a synchronous request or response
// (6 MB), applied to every transport so a job that works locally works in
// the cloud.
const MaxPayload = 6 * 1024 * 1024

// Driver moves one invocation's bytes. It returns the function's response
// payload, or an error: a *joberr.Error for a function error or a classified
// transport failure, or the context's error.
type Driver interface {
	Invoke(ctx context.Context, fn Function, payload []byte) ([]byte, error)
}

// The design card's names for the drivers.
type (
	LocalWorkerAdapter = Local  // the functions in this process
	AwsLambdaAdapter   = Lambda // the functions on AWS Lambda
)

var (
	_ Driver = (*Local)(nil)
	_ Driver = (*Lambda)(nil)
	_ Driver = (*CloudRun)(nil)
)

// Adapter is the portable client of the worker and stitcher functions.
type Adapter struct {
	driver Driver
}

// New wraps a driver.
func New(d Driver) *Adapter { return &Adapter{driver: d} }

// Execute runs one chunk on the function FunctionFor names.
func (a *Adapter) Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error) {
	var out job.WorkerResult
	err := a.call(ctx, a.route(w), w, &out)
	return out, err
}

// FunctionFor is the function that runs w: the browser worker for a chunk
// that renders a Helios composition, if the driver has one, else the
// worker. The one decision, for the call and for its price.
func (a *Adapter) FunctionFor(w job.WorkerJob) string { return string(a.route(w)) }

func (a *Adapter) route(w job.WorkerJob) Function {
	if d, ok := a.driver.(interface{ Has(Function) bool }); ok && w.NeedsBrowser() && d.Has(BrowserWorker) {
		return BrowserWorker
	}
	return Worker
}

// Stitch runs the stitcher.
func (a *Adapter) Stitch(ctx context.Context, r job.StitchRequest) (job.StitchResult, error) {
	var out job.StitchResult
	err := a.call(ctx, Stitcher, r, &out)
	return out, err
}

func (a *Adapter) call(ctx context.Context, fn Function, in, out any) error {
	payload, err := json.Marshal(in)
	if err != nil {
		return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "encode %s payload: %v", fn, err)
	}
	if len(payload) > MaxPayload {
		return joberr.Errorf(joberr.Permanent, joberr.CodePayloadTooLarge, "%s payload is %d bytes; the limit is %d", fn, len(payload), MaxPayload)
	}
	resp, err := a.driver.Invoke(ctx, fn, payload)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("invoke %s: %w", fn, ctx.Err())
		}
		return err
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "decode %s response: %v", fn, err)
	}
	return nil
}
