package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// S3Outcome is what became of one record of an S3 event.
type S3Outcome struct {
	Key   string    `json:"key"`
	JobID string    `json:"jobId,omitempty"`
	State job.State `json:"state,omitempty"`
	Note  string    `json:"note,omitempty"`
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
	log := h.log()
	outcomes := make([]S3Outcome, len(ev.Records))
	var mu sync.Mutex
	var failures []error
	g, gctx := errgroup.WithContext(ctx)
	for i, rec := range ev.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key) // S3 sends keys form-encoded: spaces as '+'
		if err != nil {
			key = rec.S3.Object.Key
		}
		out := &outcomes[i]
		out.Key = key
		switch {
		case rec.EventSource != "aws:s3" || !strings.HasPrefix(rec.EventName, "ObjectCreated:"):
			out.Note = "ignored: not an ObjectCreated record"
		case h.BucketName != "" && rec.S3.Bucket.Name != h.BucketName:
			out.Note = "ignored: bucket " + rec.S3.Bucket.Name + " is not " + h.BucketName
		case !strings.HasPrefix(key, job.JobsPrefix) || !strings.HasSuffix(key, ".json"):
			out.Note = "ignored: not under " + job.JobsPrefix + " with suffix .json"
		default:
			if _, ok := job.JobIDFromKey(key); !ok {
				out.Note = "ignored: not jobs/<id>.json with an id of letters, digits, '.', '_' or '-' (at most 128)"
			}
		}
		if out.Note != "" {
			log.Info("S3 record ignored", "key", key, "event", rec.EventName, "bucket", rec.S3.Bucket.Name, "why", out.Note)
			continue
		}
		out.JobID, _ = job.JobIDFromKey(key)
		g.Go(func() error {
			st, err := h.Orch.RunKey(gctx, key, orchestrator.RunOptions{})
			switch {
			case h.continued(gctx, out.JobID, err):
				out.Note = "continuing in a new invocation"
				return nil
			case errors.Is(err, orchestrator.ErrAlreadyRunning), errors.Is(err, orchestrator.ErrLeaseLost):
				out.Note = "already running elsewhere (duplicate event)"
				log.Info("job already running; duplicate event ignored", "key", key)
				return nil
			case err != nil:
				e := runError(err)
				out.Note = e.Error()
				log.Error("job did not run", "key", key, "error", e)
				mu.Lock()
				failures = append(failures, errors.New(key+": "+e.Error()))
				mu.Unlock()
				if job.IsRetryable(e) {
					return e // stop the others: the whole event will be retried
				}
				return nil
			}
			out.State = st.State
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
