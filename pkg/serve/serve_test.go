package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/serve"
)

type in struct{ N int }
type out struct{ Twice int }

func double(_ context.Context, i in) (out, error) {
	if i.N < 0 {
		return out{}, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "N must not be negative")
	}
	if i.N == 0 {
		return out{}, joberr.Errorf(joberr.Retryable, joberr.CodeCommandFailed, "zero")
	}
	return out{2 * i.N}, nil
}

func post(t *testing.T, h http.Handler, method, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/", strings.NewReader(body)))
	return rec
}

// Over HTTP a handler takes a POSTed payload; errors come back typed, with
// a 4xx for permanent and a 5xx for retryable ones.
func TestHTTPHandler(t *testing.T) {
	h := serve.HTTPHandler(serve.Handler[in, out](double))
	cases := []struct {
		method, body string
		status       int
		want         string
	}{
		{"POST", `{"N": 21}`, 200, `{"Twice":42}`},
		{"POST", `{"N": -1}`, 422, `"kind":"permanent"`},
		{"POST", `{"N": 0}`, 500, `"kind":"retryable"`},
		{"POST", `{"M": 1}`, 422, "does not decode"},
		{"GET", ``, 405, "use POST"},
		{"POST", `{"N": "` + strings.Repeat("x", serve.MaxHTTPBody) + `"}`, 413, "payload_too_large"},
	}
	for _, c := range cases {
		rec := post(t, h, c.method, c.body)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s %.40s: %d %s; want %d with %q", c.method, c.body, rec.Code, rec.Body.String(), c.status, c.want)
		}
		if rec.Code >= 400 && c.status != 405 && rec.Header().Get("X-Helios-Error") != joberr.ErrorType {
			t.Errorf("%s %.40s: error without the X-Helios-Error header", c.method, c.body)
		}
	}
}

// A detached invocation goes on after its caller leaves, and takes no more
// than its slots: a second one meanwhile is refused with 429.
func TestDetachedHTTPHandler(t *testing.T) {
	var finished atomic.Bool
	started := make(chan struct{}, 1)
	slow := func(ctx context.Context, i in) (out, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return out{}, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		finished.Store(true)
		return out{2 * i.N}, nil
	}
	h := serve.DetachedHTTPHandler(serve.Handler[in, out](slow), time.Minute, 1)
	ctx, leave := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(`{"N": 1}`)).WithContext(ctx))
	}()
	<-started
	leave() // the caller stops waiting
	if rec := post(t, h, "POST", `{"N": 2}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("second invocation while the first runs: %d, want 429", rec.Code)
	}
	<-done
	if !finished.Load() {
		t.Error("the invocation stopped with its caller")
	}
	rec := post(t, h, "POST", `{"N": 2}`)
	var o out
	if json.Unmarshal(rec.Body.Bytes(), &o); o.Twice != 4 {
		t.Errorf("after the first ended: %d %s", rec.Code, rec.Body.String())
	}
}

// Served on this machine, a function takes only requests with its token
// and a JSON body: a web page the user visits can make the browser POST
// text/plain to loopback, but cannot add the token or a JSON content type
// without a CORS preflight.
func TestRequireToken(t *testing.T) {
	var ran atomic.Int32
	h := serve.RequireToken("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) }))
	cases := []struct {
		name, auth, ctype string
		status            int
	}{
		{"cross-site form post", "", "text/plain", http.StatusUnauthorized},
		{"wrong token", "Bearer guess", "application/json", http.StatusUnauthorized},
		{"token, but text/plain", "Bearer s3cret", "text/plain", http.StatusUnsupportedMediaType},
		{"token and JSON", "Bearer s3cret", "application/json; charset=utf-8", http.StatusOK},
		{"token and a CloudEvent", "Bearer s3cret", "application/cloudevents+json", http.StatusOK},
	}
	for _, c := range cases {
		req := httptest.NewRequest("POST", "/", strings.NewReader(`{"N":1}`))
		req.Header.Set("Authorization", c.auth)
		req.Header.Set("Content-Type", c.ctype)
		rec := httptest.NewRecorder()
		before := ran.Load()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || (c.status == http.StatusOK) != (ran.Load() > before) {
			t.Errorf("%s: %d, ran %v", c.name, rec.Code, ran.Load() > before)
		}
	}
	// Off Cloud Run, serving without a token is refused at start-up.
	err := serve.Start(context.Background(), serve.Function{Handler: serve.Handler[in, out](double)}, serve.Platform{Port: "0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "HELIOS_HTTP_TOKEN") {
		t.Errorf("Start without a token: %v", err)
	}
}

// Invoke is the byte-level call Lambda and the Local driver make: strict
// decoding, and errors in the wire form the caller decodes back.
func TestInvoke(t *testing.T) {
	h := serve.Handler[in, out](double)
	tests := []struct {
		payload  string
		want     string // the output, or "" for an error
		wantKind joberr.Kind
		wantCode string
	}{
		{`{"N": 21}`, `{"Twice":42}`, "", ""},
		{`{"N": -1}`, "", joberr.Permanent, joberr.CodeInvalid},
		{`{"N": 0}`, "", joberr.Retryable, joberr.CodeCommandFailed},
		{`{"N": 1, "Extra": true}`, "", joberr.Permanent, joberr.CodeInvalid}, // unknown fields are refused
		{`[1]`, "", joberr.Permanent, joberr.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			got, err := h.Invoke(t.Context(), []byte(tt.payload))
			if tt.want != "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Invoke = %s, %v; want %s", got, err, tt.want)
				}
				return
			}
			var fe messages.InvokeResponse_Error
			if !errors.As(err, &fe) || fe.Type != joberr.ErrorType {
				t.Fatalf("Invoke error %v (%T); want a %s function error", err, err, joberr.ErrorType)
			}
			e := joberr.DecodeFunctionError(fe.Type, fe.Message)
			if e.Kind != tt.wantKind || e.Code != tt.wantCode {
				t.Errorf("decoded %s/%s (%s); want %s/%s", e.Kind, e.Code, e.Message, tt.wantKind, tt.wantCode)
			}
		})
	}
}

// On this machine a function is served only on loopback and only with a
// token: without one it does not start.
func TestStartRefusesToServeWithoutAToken(t *testing.T) {
	err := serve.Start(t.Context(), serve.Function{Handler: serve.Handler[in, out](double)}, serve.Platform{Port: "0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "HELIOS_HTTP_TOKEN") {
		t.Fatalf("Start without a token: %v; want an error naming HELIOS_HTTP_TOKEN", err)
	}
}
