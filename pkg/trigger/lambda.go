package trigger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/serve"
)

// Lambda returns the byte-level handler served on Lambda.
func (h *Handler) Lambda() serve.Handler[json.RawMessage, any] {
	return h.handle
}

// shape is just enough of an event to tell which one it is.
type shape struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	RequestContext *struct {
		HTTP *struct {
			Method string `json:"method"`
		} `json:"http"`
		HTTPMethod string `json:"httpMethod"`
	} `json:"requestContext"`
	JobID string           `json:"jobId"`
	Key   string           `json:"key"`
	Sweep *json.RawMessage `json:"sweep"`
}

func (h *Handler) handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var s shape
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "event is not a JSON object: %v", err)
	}
	switch {
	case len(s.Records) > 0 && s.Records[0].EventSource == "aws:s3":
		return h.s3(ctx, payload)
	case s.RequestContext != nil && s.RequestContext.HTTP != nil && s.RequestContext.HTTP.Method != "":
		return h.httpV2(ctx, payload)
	case s.RequestContext != nil && s.RequestContext.HTTPMethod != "":
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid,
			"API Gateway REST (payload format 1.0) events are not supported: use a Function URL or an HTTP API with payload format 2.0")
	case s.JobID != "" || s.Key != "":
		return h.direct(ctx, Invoke{JobID: s.JobID, Key: s.Key})
	case s.Sweep != nil:
		return h.sweep(ctx)
	}
	return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid,
		`unrecognised event: expected an S3 event, an HTTP request (payload format 2.0), {"jobId": "<id>"}, {"key": "jobs/<id>.json"} or {"sweep": {}}`)
}

// direct resumes ({"jobId"}) or starts ({"key"}) a job for a direct
// invocation, and answers with the job's status, or with what became of
// the run if it has none to give.
func (h *Handler) direct(ctx context.Context, in Invoke) (any, error) {
	ev := event{kind: resume, jobID: in.JobID}
	switch {
	case in.JobID != "" && in.Key != "":
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "give jobId or key, not both")
	case in.JobID == "":
		ev = event{kind: start, key: in.Key}
	}
	ctx, cancel := h.withMargin(ctx)
	defer cancel()
	res, err := h.dispatch(ctx, ev, retryWhenHeld)
	switch {
	case err != nil:
		return nil, err
	case res.fate == takenOver:
		return map[string]string{"jobId": res.JobID, "state": "taken over by another orchestrator"}, nil
	case res.fate == continuing:
		return map[string]string{"jobId": res.JobID, "state": noteContinuing}, nil
	}
	return res.status, nil
}

// s3 starts the jobs uploaded in an S3 event, concurrently. A duplicated
// event finds the job running (lease) or done (status) and does nothing.
// Invalid specs make the invocation fail with every problem listed, after
// the other records have run; nothing is written for them.
func (h *Handler) s3(ctx context.Context, payload json.RawMessage) (any, error) {
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "S3 event does not decode: %v", err)
	}
	ctx, cancel := h.withMargin(ctx)
	defer cancel()
	outcomes := make([]Outcome, len(ev.Records))
	var mu sync.Mutex
	var failures []error
	g, gctx := errgroup.WithContext(ctx)
	for i, rec := range ev.Records {
		g.Go(func() error {
			res, err := h.dispatch(gctx, s3Upload(rec), retryWhenHeld)
			outcomes[i] = res.Outcome
			if err == nil {
				return nil
			}
			mu.Lock()
			failures = append(failures, errors.New(res.Key+": "+err.Error()))
			mu.Unlock()
			if joberr.IsRetryable(err) {
				return err // stop the others: the whole event will be retried
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "%v", errors.Join(failures...))
	}
	return map[string]any{"records": outcomes}, nil
}

// s3Upload is the event of one S3 record.
func s3Upload(rec events.S3EventRecord) event {
	ev := event{
		kind:   upload,
		bucket: rec.S3.Bucket.Name,
		key:    rec.S3.Object.URLDecodedKey, // S3 sends keys form-encoded (spaces as '+'); aws-lambda-go decodes them
	}
	if rec.EventSource != "aws:s3" || !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
		ev.skip = "not an ObjectCreated record"
	}
	return ev
}

// httpV2 serves a Function URL / HTTP API (payload format 2.0) event with API.
func (h *Handler) httpV2(ctx context.Context, payload json.RawMessage) (any, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "HTTP event does not decode: %v", err)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Body: `{"error":"body is not valid base64"}`}, nil
		}
	}
	target := ev.RawPath
	if target == "" {
		target = "/"
	}
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	req, err := http.NewRequestWithContext(ctx, ev.RequestContext.HTTP.Method, target, bytes.NewReader(body))
	if err != nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Body: `{"error":"bad request line"}`}, nil
	}
	for k, v := range ev.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body))
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.API().ServeHTTP(rec, req)
	resp := events.APIGatewayV2HTTPResponse{StatusCode: rec.status, Headers: map[string]string{}, Body: rec.body.String()}
	for k, v := range rec.header {
		resp.Headers[k] = strings.Join(v, ", ")
	}
	return resp, nil
}

// recorder collects a net/http response for a Lambda HTTP answer.
type recorder struct {
	header      http.Header
	body        bytes.Buffer
	status      int
	wroteHeader bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}
