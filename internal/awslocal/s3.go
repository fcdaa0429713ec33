package awslocal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an S3-compatible server on loopback (gofakes3, in memory). It
// honours If-None-Match: * on PUT, which the completion markers, the spec
// claim, the lease and the stitch lock rely on, and on
// CompleteMultipartUpload; it serves UploadPartCopy and refuses a part
// other than the last under MinPartSize, as S3 does (multipartRules).
type S3 struct {
	Endpoint string // http://127.0.0.1:port
	srv      *http.Server

	mu       sync.Mutex
	tags     map[string]string // key → x-amz-tagging sent with its upload
	requests [3]int64          // served, by billing class: put, get, list
}

// Requests are the requests this server was sent, by the class S3 bills
// them in: PUT, COPY and POST; GET and HEAD; LIST. Deletes are free and
// not counted.
func (s *S3) Requests() (put, get, list int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[0], s.requests[1], s.requests[2]
}

// billingClass is the index in S3.requests of a request, or -1.
func billingClass(r *http.Request) int {
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		return 0
	case http.MethodGet, http.MethodHead:
		// Path style: /bucket or /bucket/ alone is the bucket, listed.
		if r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0 {
			return 2
		}
		return 1
	}
	return -1
}

// Tagging returns the tags the upload of key carried ("" if none): the
// fake server does not keep tags sent with PUT, so they are recorded here.
func (s *S3) Tagging(bucket, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tags["/"+bucket+"/"+key]
}

func (s *S3) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if t := r.Header.Get("X-Amz-Tagging"); t != "" {
			s.tags[r.URL.Path] = t
		}
		if c := billingClass(r); c >= 0 {
			s.requests[c]++
		}
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// StartS3 starts the server with the given buckets created.
func StartS3(buckets ...string) (*S3, error) {
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithTimeSkewLimit(0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &S3{Endpoint: "http://" + ln.Addr().String(), tags: map[string]string{}}
	handler := newMultipartRules(backend, faker.Server())
	s.srv = &http.Server{Handler: s.record(handler), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// BucketURL is the storage URL of a bucket on this server, as the functions
// and the CLI take it in HELIOS_STORAGE_URL.
func (s *S3) BucketURL(bucket string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "use_path_style": {"true"}}
	return "s3://" + bucket + "?" + q.Encode()
}

// Client is an S3 client of this server.
func (s *S3) Client() *s3.Client {
	cfg := aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

// Close stops the server.
func (s *S3) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// Region and the static credentials every emulated function and client uses.
const (
	Region          = "us-east-1"
	AccessKeyID     = "AKIDHELIOSLOCAL"
	SecretAccessKey = "helios-local-secret"
)

// CredentialsEnv is the environment that points the AWS SDK at fake
// credentials, so nothing ever reaches a real account.
func CredentialsEnv() map[string]string {
	return map[string]string{
		"AWS_REGION":                Region,
		"AWS_ACCESS_KEY_ID":         AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}
