package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// Outcome is what became of one upload or direct call.
type Outcome struct {
	Key   string    `json:"key,omitempty"`
	JobID string    `json:"jobId,omitempty"`
	State job.State `json:"state,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// startUpload runs the job an upload of key names. Keys that are not
// jobs/<id>.json are ignored. A job already running elsewhere (a duplicate
// event) is not an error; neither is a run handed to a new invocation. The
// error is a *job.Error: permanent if the spec cannot run, retryable if the
// platform should deliver the event again.
func (h *Handler) startUpload(ctx context.Context, key string) (Outcome, error) {
	out := Outcome{Key: key}
	switch id, ok := job.JobIDFromKey(key); {
	case !strings.HasPrefix(key, job.JobsPrefix) || !strings.HasSuffix(key, ".json"):
		out.Note = "ignored: not under " + job.JobsPrefix + " with suffix .json"
	case !ok:
		out.Note = "ignored: not " + job.JobsPrefix + "<id>.json with an id of " + job.IDRule
	default:
		out.JobID = id
	}
	if out.Note != "" {
		h.log().Info("upload ignored", "key", key, "why", out.Note)
		return out, nil
	}
	st, err := h.Orch.RunKey(ctx, key, orchestrator.RunOptions{})
	return h.settle(ctx, out, st, err)
}

// settle turns the result of a run into an outcome.
func (h *Handler) settle(ctx context.Context, out Outcome, st *job.Status, err error) (Outcome, error) {
	switch {
	case h.continued(ctx, out.JobID, err):
		out.Note = "continuing in a new invocation"
		return out, nil
	case errors.Is(err, jobstore.ErrAlreadyRunning), errors.Is(err, jobstore.ErrLeaseLost):
		// The run that finished may still hold the lease for the moment
		// between writing its final status and letting the lease go: a
		// redelivery then finds the job done, not running.
		if h.Jobs != nil {
			if st, serr := h.Jobs.Status(ctx, out.JobID); serr == nil && st.State == job.StateDone {
				out.State = st.State
				return out, nil
			}
		}
		out.Note = "already running elsewhere (duplicate event)"
		h.log().Info("job already running; duplicate event ignored", "jobId", out.JobID)
		return out, nil
	case err != nil:
		e := runError(err)
		out.Note = e.Error()
		h.log().Error("job did not run", "key", out.Key, "jobId", out.JobID, "error", e)
		return out, e
	}
	out.State = st.State
	return out, nil
}

// s3 starts the jobs uploaded in an S3 event, concurrently. A duplicated
// event finds the job running (lease) or done (status) and does nothing.
// Invalid specs make the invocation fail with every problem listed, after
// the other records have run; nothing is written for them.
func (h *Handler) s3(ctx context.Context, payload json.RawMessage) (any, error) {
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "S3 event does not decode: %v", err)
	}
	ctx, cancel := h.withMargin(ctx)
	defer cancel()
	outcomes := make([]Outcome, len(ev.Records))
	var mu sync.Mutex
	var failures []error
	g, gctx := errgroup.WithContext(ctx)
	for i, rec := range ev.Records {
		key := rec.S3.Object.URLDecodedKey // S3 sends keys form-encoded (spaces as '+'); aws-lambda-go decodes them
		out := &outcomes[i]
		out.Key = key
		switch {
		case rec.EventSource != "aws:s3" || !strings.HasPrefix(rec.EventName, "ObjectCreated:"):
			out.Note = "ignored: not an ObjectCreated record"
		case h.BucketName != "" && rec.S3.Bucket.Name != h.BucketName:
			out.Note = "ignored: bucket " + rec.S3.Bucket.Name + " is not " + h.BucketName
		}
		if out.Note != "" {
			h.log().Info("S3 record ignored", "key", key, "event", rec.EventName, "bucket", rec.S3.Bucket.Name, "why", out.Note)
			continue
		}
		g.Go(func() error {
			var err error
			*out, err = h.startUpload(gctx, key)
			if err == nil {
				return nil
			}
			mu.Lock()
			failures = append(failures, errors.New(key+": "+err.Error()))
			mu.Unlock()
			if job.IsRetryable(err) {
				return err // stop the others: the whole event will be retried
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, job.Errorf(job.Permanent, job.CodeInvalid, "%v", errors.Join(failures...))
	}
	return map[string]any{"records": outcomes}, nil
}
