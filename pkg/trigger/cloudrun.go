package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// CloudEvent types the orchestrator takes (Eventarc's names).
const (
	EventStorageFinalized = "google.cloud.storage.object.v1.finalized"
	EventPubSubPublished  = "google.cloud.pubsub.topic.v1.messagePublished"
)

// GCSObject is what a GCS upload event says of the object: the data of a
// google.cloud.storage.object.v1.finalized CloudEvent, and of a Pub/Sub
// notification with payload format JSON_API_V1 (the JSON API's object
// resource, which carries int64 fields as strings).
type GCSObject struct {
	Bucket      string     `json:"bucket"`
	Name        string     `json:"name"`
	Generation  Int64Field `json:"generation"`
	Size        Int64Field `json:"size"`
	ContentType string     `json:"contentType,omitempty"`
}

// Int64Field is an int64 that GCS sends as a JSON string ("1587627537231057");
// a bare number is accepted too.
type Int64Field int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int64Field) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("expected an integer (as a string), got %s", b)
	}
	*n = Int64Field(v)
	return nil
}

// PubSubPush is the body of a Pub/Sub push request, and the data of an
// Eventarc google.cloud.pubsub.topic.v1.messagePublished CloudEvent.
type PubSubPush struct {
	Message      PubSubMessage `json:"message"`
	Subscription string        `json:"subscription"`
}

// PubSubMessage is one Pub/Sub message. A GCS notification carries the
// object in Data and says what happened in Attributes (eventType, bucketId,
// objectId); a continuation carries {"jobId": "<id>"} in Data.
type PubSubMessage struct {
	Data        []byte            `json:"data"` // base64 in JSON
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId,omitempty"`
	PublishTime time.Time         `json:"publishTime,omitzero"`
}

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
	Event string `json:"event"` // what was understood: "gcs", "pubsub", "direct", …
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
	var (
		out   Outcome
		kind  string
		ctype string
	)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		ctype, _, _ = mime.ParseMediaType(ct)
	}
	switch {
	case r.Header.Get("Ce-Specversion") != "" || ctype == "application/cloudevents+json":
		kind = "cloudevent"
		out, err = h.cloudEvent(ctx, r)
	default:
		body, rerr := io.ReadAll(r.Body)
		if rerr != nil {
			writeBodyError(w, rerr, h.maxBody())
			return
		}
		kind, out, err = h.jsonEvent(ctx, body)
	}
	var bad *badEvent
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeBodyError(w, err, h.maxBody())
	case errors.As(err, &bad):
		h.log().Warn("malformed event", "error", bad.msg)
		writeJSON(w, http.StatusBadRequest, apiError{Error: bad.msg})
	case err != nil && !job.IsRetryable(err):
		// The spec cannot run (invalid, or its id taken): a redelivery
		// cannot change that, so the event is acknowledged.
		writeJSON(w, http.StatusOK, EventResponse{Outcome: out, Event: kind})
	case err != nil && h.continuedAfterFailure(ctx, out, err, started):
		out.Note = "continuing in a new request after: " + err.Error()
		writeJSON(w, http.StatusOK, EventResponse{Outcome: out, Event: kind})
	case err != nil:
		h.log().Error("event failed; the platform will retry it", "key", out.Key, "jobId", out.JobID, "error", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, EventResponse{Outcome: out, Event: kind})
	}
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
	if h.Continue == nil || time.Since(started) < minPushWait || !job.ValidID(out.JobID) {
		return false
	}
	in := Invoke{JobID: out.JobID}
	if id, ok := job.JobIDFromKey(out.Key); ok && id == out.JobID {
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

// badEvent is a request that no retry can make right: a 4xx.
type badEvent struct{ msg string }

func (e *badEvent) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badEvent{msg: fmt.Sprintf(format, args...)} }

func (h *Handler) cloudEvent(ctx context.Context, r *http.Request) (Outcome, error) {
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return Outcome{}, err
	}
	if err != nil {
		return Outcome{}, badf("not a CloudEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		return Outcome{}, badf("invalid CloudEvent: %v", err)
	}
	switch ev.Type() {
	case EventStorageFinalized:
		var obj GCSObject
		if err := json.Unmarshal(ev.Data(), &obj); err != nil || obj.Name == "" || obj.Bucket == "" {
			return Outcome{}, badf("CloudEvent %s %s: data is not a GCS object with bucket and name: %v", ev.Type(), ev.ID(), err)
		}
		return h.gcsUpload(ctx, obj.Bucket, obj.Name)
	case EventPubSubPublished:
		var push PubSubPush
		if err := json.Unmarshal(ev.Data(), &push); err != nil {
			return Outcome{}, badf("CloudEvent %s %s: data is not a Pub/Sub message: %v", ev.Type(), ev.ID(), err)
		}
		return h.pubsubMessage(ctx, push.Message)
	}
	return Outcome{}, badf("CloudEvent type %q is not handled: send %s (uploads under %s) or %s", ev.Type(),
		EventStorageFinalized, job.JobsPrefix, EventPubSubPublished)
}

// jsonEvent handles a plain JSON body: a Pub/Sub push, or a direct call.
func (h *Handler) jsonEvent(ctx context.Context, body []byte) (string, Outcome, error) {
	var probe struct {
		Message      json.RawMessage `json:"message"`
		Subscription string          `json:"subscription"`
		JobID        string          `json:"jobId"`
		Key          string          `json:"key"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", Outcome{}, badf("body is not a JSON object: %v", err)
	}
	switch {
	case probe.Message != nil:
		var push PubSubPush
		if err := json.Unmarshal(body, &push); err != nil {
			return "pubsub", Outcome{}, badf("Pub/Sub push does not decode: %v", err)
		}
		out, err := h.pubsubMessage(ctx, push.Message)
		return "pubsub", out, err
	case probe.JobID != "" || probe.Key != "":
		var in Invoke
		if err := decodeStrict(body, &in); err != nil {
			return "direct", Outcome{}, badf(`expected {"jobId": "<id>"} or {"key": "jobs/<id>.json"}: %v`, err)
		}
		out, err := h.directHTTP(ctx, in)
		return "direct", out, err
	}
	return "", Outcome{}, badf(`unrecognised event: expected a CloudEvent (ce-* headers or application/cloudevents+json), a Pub/Sub push {"message": …, "subscription": …}, {"jobId": "<id>"} or {"key": "jobs/<id>.json"}`)
}

// pubsubMessage handles one Pub/Sub message: a GCS notification, or a
// continuation {"jobId"}.
func (h *Handler) pubsubMessage(ctx context.Context, m PubSubMessage) (Outcome, error) {
	if et := m.Attributes["eventType"]; et != "" {
		if et != "OBJECT_FINALIZE" {
			return Outcome{Key: m.Attributes["objectId"], Note: "ignored: GCS " + et + " is not an upload"}, nil
		}
		bucket, key := m.Attributes["bucketId"], m.Attributes["objectId"]
		if bucket == "" || key == "" {
			return Outcome{}, badf("GCS notification %s without bucketId and objectId attributes", m.MessageID)
		}
		return h.gcsUpload(ctx, bucket, key)
	}
	var in Invoke
	if err := decodeStrict(m.Data, &in); err != nil || (in.JobID == "" && in.Key == "") {
		return Outcome{}, badf(`Pub/Sub message %s is neither a GCS notification (eventType attribute) nor {"jobId": "<id>"}: %v`, m.MessageID, err)
	}
	return h.directHTTP(ctx, in)
}

// gcsUpload starts the job an upload names, if it is one of ours.
func (h *Handler) gcsUpload(ctx context.Context, bucket, key string) (Outcome, error) {
	if h.BucketName != "" && bucket != h.BucketName {
		h.log().Info("GCS event ignored", "bucket", bucket, "key", key, "why", "not bucket "+h.BucketName)
		return Outcome{Key: key, Note: "ignored: bucket " + bucket + " is not " + h.BucketName}, nil
	}
	return h.startUpload(ctx, key)
}

// directHTTP resumes or starts a job for a direct call over HTTP. Unlike on
// Lambda, a job held by another run is an answer, not a failure: the
// message is a duplicate, and the run holding it continues the job itself.
func (h *Handler) directHTTP(ctx context.Context, in Invoke) (Outcome, error) {
	if in.JobID != "" && in.Key != "" {
		return Outcome{}, badf("give jobId or key, not both")
	}
	if in.Key != "" {
		return h.startUpload(ctx, in.Key)
	}
	out := Outcome{JobID: in.JobID, Key: job.JobKey(in.JobID)}
	if !job.ValidID(in.JobID) {
		return out, badf("jobId %q: expected %s", in.JobID, job.IDRule)
	}
	st, err := h.Orch.Resume(ctx, in.JobID, orchestrator.RunOptions{})
	// A continuation can arrive before the run it continues has let its
	// lease go (releasing is best effort): wait for the lease to run out
	// before calling it a duplicate, or the job would be stranded.
	for wait := time.Now().Add(h.resumeWait()); errors.Is(err, jobstore.ErrAlreadyRunning) && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return h.settle(ctx, out, st, err)
		case <-time.After(2 * time.Second):
		}
		st, err = h.Orch.Resume(ctx, in.JobID, orchestrator.RunOptions{})
	}
	return h.settle(ctx, out, st, err)
}

func (h *Handler) resumeWait() time.Duration {
	if h.ResumeWait > 0 {
		return h.ResumeWait
	}
	return 40 * time.Second
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeBodyError(w http.ResponseWriter, err error, limit int64) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("request body is over %d bytes", limit)})
		return
	}
	writeJSON(w, http.StatusBadRequest, apiError{Error: "cannot read the request body: " + err.Error()})
}
