package awslocal

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// MinPartSize is S3's smallest part but for the last of a multipart upload.
const MinPartSize = 5 << 20

// multipartRules adds to gofakes3 what S3 does with multipart uploads and
// gofakes3 v1.2.0 does not:
//   - UploadPartCopy (PUT ?partNumber=&uploadId= with x-amz-copy-source and
//     an optional x-amz-copy-source-range): the part is the source object,
//     or the range of it, read from the backend;
//   - EntityTooSmall at completion when a part other than the last is under
//     MinPartSize;
//   - If-None-Match: * at completion (gofakes3 honours it on PUT only);
//   - an empty ListMultipartUploads of a bucket that never had one
//     (gofakes3 answers NoSuchUpload).
//
// A conditional completion and a conditional PUT each check and write under
// one lock, so they exclude one another as on S3.
type multipartRules struct {
	backend gofakes3.Backend
	next    http.Handler

	conditional sync.Mutex

	mu    sync.Mutex
	sizes map[string]map[int]int64 // upload id → part number → bytes
}

func newMultipartRules(backend gofakes3.Backend, next http.Handler) *multipartRules {
	return &multipartRules{backend: backend, next: next, sizes: map[string]map[int]int64{}}
}

func (m *multipartRules) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	uploadID := q.Get("uploadId")
	switch {
	case uploadID != "" && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		m.copyPart(w, r, uploadID)
	case uploadID != "" && r.Method == http.MethodPut:
		m.uploadPart(w, r, uploadID)
	case uploadID != "" && r.Method == http.MethodPost:
		m.complete(w, r, uploadID)
	case uploadID != "" && r.Method == http.MethodDelete:
		m.forget(uploadID)
		m.next.ServeHTTP(w, r)
	case r.Method == http.MethodGet && q.Has("uploads"):
		m.listUploads(w, r)
	case r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "":
		m.conditional.Lock()
		defer m.conditional.Unlock()
		m.next.ServeHTTP(w, r)
	default:
		m.next.ServeHTTP(w, r)
	}
}

// uploadPart passes an UploadPart on and notes the part's size.
func (m *multipartRules) uploadPart(w http.ResponseWriter, r *http.Request, uploadID string) {
	part, err := strconv.Atoi(r.URL.Query().Get("partNumber"))
	if err != nil {
		m.next.ServeHTTP(w, r)
		return
	}
	size := r.ContentLength
	if decoded := r.Header.Get("X-Amz-Decoded-Content-Length"); decoded != "" { // aws-chunked
		if size, err = strconv.ParseInt(decoded, 10, 64); err != nil {
			writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "x-amz-decoded-content-length is not a number")
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	m.next.ServeHTTP(sw, r)
	if sw.status == http.StatusOK && size >= 0 {
		m.note(uploadID, part, size)
	}
}

// copyPart is UploadPartCopy: it reads the source (range) from the backend
// and uploads it as the part through gofakes3, so the part is stored, listed
// and completed like any other, then answers with a CopyPartResult.
func (m *multipartRules) copyPart(w http.ResponseWriter, r *http.Request, uploadID string) {
	part, err := strconv.Atoi(r.URL.Query().Get("partNumber"))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "partNumber is not a number")
		return
	}
	data, ok := m.readCopySource(w, r)
	if !ok {
		return
	}
	rec := httptest.NewRecorder()
	m.next.ServeHTTP(rec, uploadPartRequest(r, data))
	if rec.Code != http.StatusOK {
		writeRecorded(w, rec)
		return
	}
	m.note(uploadID, part, int64(len(data)))
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(copyPartResult{
		ETag:         rec.Header().Get("ETag"),
		LastModified: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	})
}

// readCopySource reads what x-amz-copy-source names from the backend: the
// whole object, or the range x-amz-copy-source-range gives. If it cannot,
// it has answered w with S3's error and returns false.
func (m *multipartRules) readCopySource(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	bucket, key, err := parseCopySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "InvalidArgument", err.Error())
		return nil, false
	}
	head, err := m.backend.HeadObject(bucket, key)
	if err != nil {
		writeBackendError(w, err, key)
		return nil, false
	}
	rng, ok := copyRange(w, r.Header.Get("X-Amz-Copy-Source-Range"), bucket, key, head.Size)
	if !ok {
		return nil, false
	}
	obj, err := m.backend.GetObject(bucket, key, rng)
	if err != nil {
		writeBackendError(w, err, key)
		return nil, false
	}
	data, err := io.ReadAll(obj.Contents)
	obj.Contents.Close()
	if err != nil {
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return nil, false
	}
	return data, true
}

// copyRange is the range to read of bucket/key, of size bytes, given the
// x-amz-copy-source-range header h: nil for the whole object when h is
// empty. A range that is malformed or runs past the object is answered on
// w (InvalidArgument, InvalidRange) and copyRange returns false.
func copyRange(w http.ResponseWriter, h, bucket, key string, size int64) (*gofakes3.ObjectRangeRequest, bool) {
	if h == "" {
		return nil, true
	}
	first, last, err := parseCopyRange(h)
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "InvalidArgument", err.Error())
		return nil, false
	}
	if last >= size {
		writeS3Error(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange",
			fmt.Sprintf("range %s is not within %s/%s of %d bytes", h, bucket, key, size))
		return nil, false
	}
	return &gofakes3.ObjectRangeRequest{Start: first, End: last}, true
}

// uploadPartRequest turns the UploadPartCopy r into the UploadPart of
// data that gofakes3 understands: without the copy-source headers, and
// without the checksums and lengths that were about r's (empty) body.
func uploadPartRequest(r *http.Request, data []byte) *http.Request {
	put := r.Clone(r.Context())
	put.Body = io.NopCloser(bytes.NewReader(data))
	put.ContentLength = int64(len(data))
	put.Header = put.Header.Clone()
	for h := range put.Header {
		if strings.HasPrefix(strings.ToLower(h), "x-amz-copy-source") || strings.HasPrefix(strings.ToLower(h), "x-amz-checksum") {
			put.Header.Del(h)
		}
	}
	put.Header.Del("Content-Md5")
	put.Header.Del("X-Amz-Decoded-Content-Length")
	put.Header.Set("Content-Length", strconv.Itoa(len(data)))
	put.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	return put
}

// writeRecorded passes gofakes3's recorded answer on to w as it is.
func writeRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// complete enforces the part size rule and If-None-Match: *, then lets
// gofakes3 assemble the object.
func (m *multipartRules) complete(w http.ResponseWriter, r *http.Request, uploadID string) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req gofakes3.CompleteMultipartUploadRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		writeS3Error(w, http.StatusBadRequest, "MalformedXML", err.Error())
		return
	}
	m.mu.Lock()
	sizes := m.sizes[uploadID]
	for i, p := range req.Parts {
		size, known := sizes[p.PartNumber]
		if known && size < MinPartSize && i < len(req.Parts)-1 {
			m.mu.Unlock()
			writeS3Error(w, http.StatusBadRequest, "EntityTooSmall",
				fmt.Sprintf("Your proposed upload is smaller than the minimum allowed size: part %d is %d bytes, every part but the last must be at least %d", p.PartNumber, size, MinPartSize))
			return
		}
	}
	m.mu.Unlock()

	if r.Header.Get("If-None-Match") == "*" {
		m.conditional.Lock()
		defer m.conditional.Unlock()
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if _, err := m.backend.HeadObject(bucket, key); err == nil {
			writeS3Error(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
			return
		} else if !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
			writeBackendError(w, err, key)
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	m.next.ServeHTTP(sw, r)
	if sw.status == http.StatusOK {
		m.forget(uploadID)
	}
}

// listUploads passes ListMultipartUploads on, answering an empty list
// where gofakes3 says NoSuchUpload: it keeps no list for a bucket until
// an upload starts in it.
func (m *multipartRules) listUploads(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	m.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusNotFound && strings.Contains(rec.Body.String(), "<Code>NoSuchUpload</Code>") {
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		w.Header().Set("Content-Type", "application/xml")
		xml.NewEncoder(w).Encode(gofakes3.ListMultipartUploadsResult{Bucket: bucket, Prefix: r.URL.Query().Get("prefix")})
		return
	}
	writeRecorded(w, rec)
}

func (m *multipartRules) note(uploadID string, part int, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sizes[uploadID] == nil {
		m.sizes[uploadID] = map[int]int64{}
	}
	m.sizes[uploadID][part] = size
}

func (m *multipartRules) forget(uploadID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sizes, uploadID)
}

// parseCopySource splits x-amz-copy-source: "bucket/key" URL-encoded as a
// whole or per segment, with an optional leading "/" and "?versionId=".
func parseCopySource(h string) (bucket, key string, err error) {
	h, _, _ = strings.Cut(h, "?")
	decoded, err := url.QueryUnescape(h)
	if err != nil {
		return "", "", fmt.Errorf("x-amz-copy-source %q: %w", h, err)
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(decoded, "/"), "/")
	if !ok || bucket == "" || key == "" {
		return "", "", fmt.Errorf("x-amz-copy-source %q is not bucket/key", h)
	}
	return bucket, key, nil
}

// parseCopyRange reads "bytes=first-last": both offsets are required and
// inclusive, unlike a GET's Range.
func parseCopyRange(h string) (first, last int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if ok && ok2 {
		first, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			last, err = strconv.ParseInt(b, 10, 64)
		}
		if err == nil && first >= 0 && first <= last {
			return first, last, nil
		}
	}
	return 0, 0, fmt.Errorf("x-amz-copy-source-range %q is not bytes=first-last", h)
}

type copyPartResult struct {
	XMLName      xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CopyPartResult"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag"`
}

type s3Error struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
}

func writeS3Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	xml.NewEncoder(w).Encode(s3Error{Code: code, Message: message})
}

func writeBackendError(w http.ResponseWriter, err error, key string) {
	switch {
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist: "+key)
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket):
		writeS3Error(w, http.StatusNotFound, "NoSuchBucket", err.Error())
	default:
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
	}
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}
