package adapter

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// Local runs the functions in this process, through the same
// byte-level Invoke that Lambda calls, so payloads and errors make the same
// JSON round trip they make in the cloud.
type Local struct {
	handlers map[Function]lambda.Handler
	slots    chan struct{}
}

// NewLocal makes a local driver running at most concurrency invocations at
// once (0 means the number of CPUs), like a function's reserved concurrency.
func NewLocal(worker, stitcher lambda.Handler, concurrency int) *Local {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	return &Local{
		handlers: map[Function]lambda.Handler{Worker: worker, Stitcher: stitcher},
		slots:    make(chan struct{}, concurrency),
	}
}

// Invoke implements Driver.
func (l *Local) Invoke(ctx context.Context, fn Function, payload []byte) (out []byte, err error) {
	h := l.handlers[fn]
	if h == nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "no local handler for function %q", fn)
	}
	select {
	case l.slots <- struct{}{}:
		defer func() { <-l.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() {
		// A panic is what a crashed Lambda runtime reports as Runtime.ExitError.
		if p := recover(); p != nil {
			out, err = nil, joberr.DecodeFunctionError("Runtime.ExitError", fmt.Sprint(p))
		}
	}()
	out, err = h.Invoke(ctx, payload)
	if err != nil {
		var fe messages.InvokeResponse_Error
		if errors.As(err, &fe) {
			return nil, joberr.DecodeFunctionError(fe.Type, fe.Message)
		}
		return nil, joberr.AsError(err)
	}
	return out, nil
}
