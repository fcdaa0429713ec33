// Package serve serves one typed handler, func(ctx, In) (Out, error), the
// way each platform expects: on AWS Lambda through aws-lambda-go when
// AWS_LAMBDA_RUNTIME_API is set, otherwise as an HTTP function through
// functions-framework-go on $PORT (Cloud Run, or a laptop). The local adapter
// calls the very same byte-level Invoke in process.
//
// Errors leave a handler as a HeliosError: on Lambda the errorType is
// "HeliosError" and the errorMessage is the *joberr.Error as JSON; over HTTP the
// body is that JSON with a 4xx (permanent) or 5xx (retryable) status. Either
// way the caller gets back the kind, code, exit code and stderr tail.
package serve

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// Handler is a typed function handler. Its Invoke method is the byte-level
// interface Lambda uses (lambda.Handler).
type Handler[In, Out any] func(context.Context, In) (Out, error)

var _ lambda.Handler = Handler[int, int](nil)

// Invoke decodes the payload strictly, calls the handler and encodes the
// result. A payload that does not decode is a permanent error.
func (h Handler[In, Out]) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var in In
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, WireError(joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "payload does not decode: %v", err))
	}
	out, err := h(ctx, in)
	if err != nil {
		return nil, WireError(err)
	}
	return json.Marshal(out)
}

// WireError is err as Lambda reports a handled function error.
func WireError(err error) messages.InvokeResponse_Error {
	return messages.InvokeResponse_Error{Type: joberr.ErrorType, Message: joberr.MarshalWire(err)}
}

// Platform says where a function runs; pkg/config reads it from the
// environment.
type Platform struct {
	Lambda bool   // serve the Lambda runtime API
	Port   string // else serve HTTP on this port
	Public bool   // listen on every interface (Cloud Run), not only loopback
	// Token is the secret every request must carry as "Authorization:
	// Bearer <token>" when serving on this machine (not Public): loopback is
	// reachable from any web page the user visits and any local process.
	Token string
}

// Function is one function as the platforms serve it: the byte-level
// handler (Lambda, and the local adapter in process) and, over HTTP, either
// that handler taking a POSTed payload (the default) or a handler of its own
// (the orchestrator's REST API and events).
type Function struct {
	Handler lambda.Handler
	HTTP    http.Handler // nil: HTTPHandler(Handler)
}

// ShutdownGrace is how long a function served over HTTP lets its requests
// finish once ctx ends (SIGTERM): Cloud Run kills an instance 10 s after
// sending it.
const ShutdownGrace = 8 * time.Second

// Start serves h on its platform and returns only when serving ends: over
// HTTP, when ctx ends (SIGTERM) and the requests in flight have finished,
// or ShutdownGrace has passed.
func Start(ctx context.Context, fn Function, p Platform, log *slog.Logger) error {
	if p.Lambda {
		lambda.StartHandlerWithContext(ctx, fn.Handler) // never returns
		return nil
	}
	h := fn.HTTP
	if h == nil {
		h = HTTPHandler(fn.Handler)
	}
	// Anywhere but Cloud Run (where IAM checks every request at the
	// front), a function listens on loopback only and takes only requests
	// that carry the token.
	host := "127.0.0.1"
	if p.Public {
		host = ""
	} else {
		if p.Token == "" {
			return fmt.Errorf("serving over HTTP on this machine needs a token: set HELIOS_HTTP_TOKEN to a secret (callers send it as Authorization: Bearer)")
		}
		h = RequireToken(p.Token, h)
	}
	var inFlight atomic.Int64 // not a WaitGroup: requests may still arrive while we wait
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		h.ServeHTTP(w, r)
	})
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/", counted.ServeHTTP); err != nil {
		return fmt.Errorf("register function: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	log.Info("serving over HTTP", "addr", net.JoinHostPort(host, p.Port))
	served := make(chan error, 1)
	go func() { served <- funcframework.StartHostPort(host, p.Port) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// functions-framework has no shutdown: let what is in flight finish (an
	// orchestrator's runs save their progress and continue elsewhere when
	// ctx ends), then return so the process exits.
	log.Info("stopping: letting requests in flight finish", "grace", ShutdownGrace)
	for deadline := time.Now().Add(ShutdownGrace); inFlight.Load() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Warn("stopped with requests still in flight", "requests", inFlight.Load())
			return nil
		}
	}
	// The server writes a response out after its handler returns.
	time.Sleep(250 * time.Millisecond)
	log.Info("stopped")
	return nil
}

// RequireToken lets through only requests that carry token as a bearer
// token and, when they have a body, a JSON content type: a web page can
// make a browser send neither without a CORS preflight, which nothing
// here answers.
func RequireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="helios"`)
			writeError(w, http.StatusUnauthorized, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "missing or wrong bearer token (HELIOS_HTTP_TOKEN)"))
			return
		}
		if r.ContentLength != 0 { // a body (or one of unknown length) must be JSON
			ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if ct != "application/json" && ct != "application/cloudevents+json" {
				writeError(w, http.StatusUnsupportedMediaType, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "content type %q: send application/json", ct))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// MaxHTTPBody bounds a request body, like Lambda's 6 MB payload limit.
const MaxHTTPBody = 6 << 20

// HTTPHandler serves h over HTTP: POST a JSON payload, get JSON back. The
// invocation ends when the caller goes away.
func HTTPHandler(h lambda.Handler) http.Handler { return httpHandler(h, 0, nil) }

// DetachedHTTPHandler serves h over HTTP like HTTPHandler, but an invocation
// outlives its caller, bounded by limit, as a Lambda invocation does: for
// work that must not be lost halfway because the caller stopped waiting (a
// stitch whose orchestrator reached its own request limit; the run that
// resumes the job then finds the output instead of waiting for the lock of
// a stitch that was abandoned). The platform no longer counts an invocation
// whose caller left, so at most maxInFlight run at once here; more are
// refused with 429, which callers retry.
func DetachedHTTPHandler(h lambda.Handler, limit time.Duration, maxInFlight int) http.Handler {
	return httpHandler(h, limit, make(chan struct{}, max(maxInFlight, 1)))
}

func httpHandler(h lambda.Handler, detachedLimit time.Duration, slots chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "use POST with a JSON body"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHTTPBody))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, joberr.Errorf(joberr.Permanent, joberr.CodePayloadTooLarge, "body over %d bytes", MaxHTTPBody))
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "reading the body: %v", err))
			return
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				w.Header().Set("Retry-After", "5")
				http.Error(w, "busy: an earlier invocation whose caller left is still running here (no available instance)", http.StatusTooManyRequests)
				return
			}
		}
		ctx := r.Context()
		if detachedLimit > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), detachedLimit)
			defer cancel()
		}
		out, err := h.Invoke(ctx, body)
		if err != nil {
			var fe messages.InvokeResponse_Error
			e := joberr.AsError(err)
			if errors.As(err, &fe) {
				e = joberr.DecodeFunctionError(fe.Type, fe.Message)
			}
			status := http.StatusInternalServerError
			if !e.Retryable() {
				status = http.StatusUnprocessableEntity
			}
			writeError(w, status, e)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

func writeError(w http.ResponseWriter, status int, e *joberr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Helios-Error", joberr.ErrorType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}
