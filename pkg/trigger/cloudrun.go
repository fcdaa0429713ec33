package trigger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// HTTP is the orchestrator served over HTTP, as on Cloud Run:
//
//	POST /jobs, GET /jobs/{id}, DELETE /jobs/{id}   the API (see API)
//	POST /sweep  resume jobs left behind (Cloud Scheduler calls it)
//	POST /   an event: a CloudEvent in binary or structured content mode
//	         (a GCS object finalized, or a Pub/Sub message published), a
//	         Pub/Sub push, or a direct {"jobId": "<id>"} / {"key": "jobs/<id>.json"}
//
// An event is answered 2xx when it is done with: the job ran, is running
// elsewhere (a redelivery), continues in a new request, or cannot run at all
// (an invalid spec: retrying cannot help; the status says why). A failure
// worth retrying is a 5xx, so the platform redelivers; a malformed request
// is a 4xx. The render does not depend on the push connection: it goes on
// if the platform stops waiting for the answer, until the request's own
// limit (RequestTimeout) less Margin or the process being told to stop,
// then continues in a new request through Continue; so does a run that
// fails, worth retrying, after its push may have stopped waiting.
func (h *Handler) HTTP() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/jobs", h.API())
	mux.Handle("/jobs/", h.API())
	mux.HandleFunc("POST /{$}", h.serveEvent)
	mux.HandleFunc("POST /sweep", func(w http.ResponseWriter, r *http.Request) {
		rep, err := h.sweep(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no route " + r.Method + " " + r.URL.Path +
			"; use POST / for events, POST /jobs, GET /jobs/{id} or DELETE /jobs/{id}"})
	})
	return mux
}

// EventResponse is the answer to an event.
type EventResponse struct {
	Outcome
	Event string `json:"event"` // the envelope understood: "cloudevent", "pubsub" or "direct"
}

func (h *Handler) serveEvent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody())
	started := time.Now()
	ctx, cancel, err := h.requestContext(r)
	if err != nil {
		h.log().Error("no time to run", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
		return
	}
	defer cancel()
	name, ev, err := h.decodeRequest(r)
	var bad *badEvent
	switch {
	case errors.As(err, &bad):
		h.log().Warn("malformed event", "error", bad.msg)
		writeJSON(w, http.StatusBadRequest, apiError{Error: bad.msg})
		return
	case err != nil:
		writeBodyError(w, err, h.maxBody())
		return
	}
	res, err := h.dispatch(ctx, ev, waitWhenHeld)
	out := res.Outcome
	switch {
	case err != nil && !joberr.IsRetryable(err):
		// The spec cannot run (invalid, or its id taken): a redelivery
		// cannot change that, so the event is acknowledged.
	case err != nil && h.continuedAfterFailure(ctx, out, err, started):
		out.Note = "continuing in a new request after: " + err.Error()
	case err != nil:
		h.log().Error("event failed; the platform will retry it", "key", out.Key, "jobId", out.JobID, "error", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, EventResponse{Outcome: out, Event: name})
}

// minWindow is the least time a run over HTTP must have before its margin;
// minPushWait is Pub/Sub's shortest ack deadline: a request older than that
// may have no one waiting for its answer.
const (
	minWindow   = 5 * time.Second
	minPushWait = 10 * time.Second
)

// continuedAfterFailure hands a run that failed in a way worth retrying to
// a new request, if the push that started it may have stopped waiting (a
// redelivery then found the job running and was acknowledged, so a 5xx now
// would reach no one). A young request answers 5xx instead, and the
// platform redelivers it with backoff.
func (h *Handler) continuedAfterFailure(ctx context.Context, out Outcome, err error, started time.Time) bool {
	if h.Continue == nil || time.Since(started) < minPushWait || !layout.ValidID(out.JobID) {
		return false
	}
	in := Invoke{JobID: out.JobID}
	if id, ok := layout.JobIDFromKey(out.Key); ok && id == out.JobID {
		in = Invoke{Key: out.Key} // the upload may not have been accepted yet
	}
	if cerr := h.Continue(context.WithoutCancel(ctx), in); cerr != nil {
		h.log().Error("could not continue the job in a new request", "jobId", out.JobID, "error", cerr, "after", err)
		return false
	}
	h.log().Warn("run failed; the job continues in a new request", "jobId", out.JobID, "error", err)
	return true
}

// requestContext is the context of one event: not the client's (a push
// that stops waiting must not stop the render) but bounded by the request
// limit of the platform less the margin, and by the process stopping.
func (h *Handler) requestContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx, stop := context.WithCancelCause(context.WithoutCancel(r.Context()))
	cancels := []context.CancelFunc{func() { stop(nil) }}
	if h.Stopping != nil {
		unregister := context.AfterFunc(h.Stopping, func() { stop(errStopping) })
		cancels = append(cancels, func() { unregister() })
	}
	if h.RequestTimeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, h.RequestTimeout)
		cancels = append(cancels, c)
	}
	ctx, c := h.withMargin(ctx)
	cancels = append(cancels, c)
	cancel := func() {
		for i := len(cancels) - 1; i >= 0; i-- {
			cancels[i]()
		}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < minWindow {
		cancel()
		return nil, nil, fmt.Errorf("%s leaves %s before the margin: too little to run (raise it)", "the request limit", time.Until(d).Round(time.Second))
	}
	return ctx, cancel, nil
}

func writeBodyError(w http.ResponseWriter, err error, limit int64) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("request body is over %d bytes", limit)})
		return
	}
	writeJSON(w, http.StatusBadRequest, apiError{Error: "cannot read the request body: " + err.Error()})
}
