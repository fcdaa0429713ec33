package trigger

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// API is the orchestrator's HTTP API:
//
//	POST   /jobs       spec in the body → 202 {jobId, statusUrl}; writes jobs/<id>.json,
//	                   whose upload starts the render
//	GET    /jobs/{id}  status JSON (with a presigned outputUrl once done), 404 if unknown
//	DELETE /jobs/{id}  cancel → 202
//
// Bad JSON or an invalid spec is a 400 listing every problem, with nothing
// written; a body over the limit is a 413. Authentication is the
// platform's (a Function URL with AWS_IAM auth, Cloud Run IAM).
func (h *Handler) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs", h.postJob)
	mux.HandleFunc("GET /jobs/{id}", h.getJob)
	mux.HandleFunc("DELETE /jobs/{id}", h.deleteJob)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no route " + r.Method + " " + r.URL.Path + "; use POST /jobs, GET /jobs/{id} or DELETE /jobs/{id}"})
	})
	return mux
}

type apiError struct {
	Error    string           `json:"error"`
	Problems []joberr.Problem `json:"problems,omitempty"`
}

// Accepted is the answer to POST /jobs.
type Accepted struct {
	JobID     string `json:"jobId"`
	Status    string `json:"status"`
	StatusURL string `json:"statusUrl"`
	SpecKey   string `json:"specKey"`
}

func (h *Handler) postJob(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody()))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("request body is over %d bytes", h.maxBody())})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "cannot read the request body: " + err.Error()})
		return
	}
	id := job.PeekID(body)
	if id == "" {
		id = NewID(time.Now())
	}
	spec, err := h.Jobs.Prepare(bytes.NewReader(body), id)
	var ve *joberr.ValidationError
	if errors.As(err, &ve) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid job spec", Problems: ve.Problems})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	err = h.Jobs.Submit(r.Context(), spec)
	if errors.Is(err, jobstore.ErrConflict) {
		writeJSON(w, http.StatusConflict, apiError{Error: fmt.Sprintf("job %q already exists with a different spec", spec.ID)})
		return
	}
	if err != nil {
		h.log().Error("submit", "jobId", spec.ID, "error", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "could not store the job; try again"})
		return
	}
	h.log().Info("job submitted", "jobId", spec.ID)
	writeJSON(w, http.StatusAccepted, Accepted{JobID: spec.ID, Status: "submitted", StatusURL: "/jobs/" + spec.ID, SpecKey: layout.JobKey(spec.ID)})
}

// StatusResponse is the answer to GET /jobs/{id}: the status with a
// signed outputUrl beside its fields.
type StatusResponse struct {
	*job.Status
	OutputURL string `json:"outputUrl,omitempty"`
}

// MarshalJSON puts outputUrl beside the status's own (compact) fields.
func (r StatusResponse) MarshalJSON() ([]byte, error) {
	var extra map[string]any
	if r.OutputURL != "" {
		extra = map[string]any{"outputUrl": r.OutputURL}
	}
	return r.Status.MarshalWithFields(extra)
}

// UnmarshalJSON reads both.
func (r *StatusResponse) UnmarshalJSON(data []byte) error {
	r.Status = new(job.Status)
	if err := json.Unmarshal(data, r.Status); err != nil {
		return err
	}
	var u struct {
		OutputURL string `json:"outputUrl"`
	}
	if err := json.Unmarshal(data, &u); err != nil {
		return err
	}
	r.OutputURL = u.OutputURL
	return nil
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := h.Jobs.Lookup(r.Context(), id)
	if errors.Is(err, jobstore.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("job %q not found", id)})
		return
	}
	if err != nil {
		h.log().Error("read status", "jobId", id, "error", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "could not read the status; try again"})
		return
	}
	resp := StatusResponse{Status: st}
	if st.State == job.StateDone && st.Output != "" {
		if u, err := h.Jobs.OutputURL(r.Context(), st.Output, time.Hour); err == nil {
			resp.OutputURL = u
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) deleteJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := h.Jobs.Cancel(r.Context(), id)
	if errors.Is(err, jobstore.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, apiError{Error: fmt.Sprintf("job %q not found", id)})
		return
	}
	if errors.Is(err, jobstore.ErrEnded) {
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error() + "; nothing to cancel"})
		return
	}
	if err != nil {
		h.log().Error("cancel", "jobId", id, "error", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "could not request the cancellation; try again"})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"jobId": id, "status": "cancel requested"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// NewID makes a job id for a spec that has none: sortable by time, unique
// by 32 random bits.
func NewID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
