package gcplocal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// composeRules adds to fake-gcs-server's compose (v1.56.1) what Cloud
// Storage does and it does not: the destination's preconditions
// (ifGenerationMatch, 0 meaning "does not exist"), 404 rather than 500 for
// a missing source, and deleteSourceObjects. Its limit of 32 sources a call
// is Cloud Storage's already.
//
// Composes check and write under one lock, so two conditional composes
// exclude one another; an upload racing a compose is not excluded.
type composeRules struct {
	srv  *fakestorage.Server
	next http.Handler
	mu   sync.Mutex
}

type composeRequest struct {
	SourceObjects []struct {
		Name string `json:"name"`
	} `json:"sourceObjects"`
	DeleteSourceObjects bool `json:"deleteSourceObjects"`
}

func (c *composeRules) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, object, ok := composeTarget(r)
	if !ok {
		c.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		writeGCSError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req composeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeGCSError(w, http.StatusBadRequest, "parseError", err.Error())
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if want := r.URL.Query().Get("ifGenerationMatch"); want != "" {
		gen, _ := c.generation(bucket, object) // 0: absent
		if strconv.FormatInt(gen, 10) != want {
			writeGCSError(w, http.StatusPreconditionFailed, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
			return
		}
	}
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusInternalServerError {
		// Looked up only now: the fake's lookups scan the whole bucket.
		for _, src := range req.SourceObjects {
			if _, ok := c.generation(bucket, src.Name); !ok {
				writeGCSError(w, http.StatusNotFound, "notFound", fmt.Sprintf("Object %s/%s (a compose source) not found", bucket, src.Name))
				return
			}
		}
	}
	if rec.Code == http.StatusOK && req.DeleteSourceObjects {
		for _, src := range req.SourceObjects {
			if src.Name != object {
				_ = c.srv.Backend().DeleteObject(bucket, src.Name)
			}
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// generation is an object's live generation; ok is false if it is absent.
func (c *composeRules) generation(bucket, name string) (int64, bool) {
	obj, err := c.srv.GetObjectStreaming(bucket, name)
	if err != nil {
		return 0, false
	}
	obj.Close()
	return obj.Generation, true
}

// composeTarget recognises the JSON API's compose:
// POST /storage/v1/b/{bucket}/o/{object}/compose.
func composeTarget(r *http.Request) (bucket, object string, ok bool) {
	if r.Method != http.MethodPost {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/storage/v1/b/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/compose")
	if !ok {
		return "", "", false
	}
	b, o, ok := strings.Cut(rest, "/o/")
	if !ok {
		return "", "", false
	}
	bucket, err1 := url.PathUnescape(b)
	object, err2 := url.PathUnescape(o)
	return bucket, object, err1 == nil && err2 == nil
}

func writeGCSError(w http.ResponseWriter, status int, reason, message string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	type item struct {
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": message, "errors": []item{{"global", reason, message}},
	}})
}
