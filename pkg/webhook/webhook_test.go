package webhook_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/webhook"
)

var key = []byte("0123456789abcdef0123456789abcdef")

// delivery is what a receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// receiver is a loopback endpoint answering statuses in turn (200 once
// they run out), keeping what it got.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, func() []delivery) {
	var mu sync.Mutex
	var got []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Clone(), body})
		n := len(got)
		mu.Unlock()
		if n <= len(statuses) {
			w.WriteHeader(statuses[n-1])
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []delivery { mu.Lock(); defer mu.Unlock(); return append([]delivery(nil), got...) }
}

func fast() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) }

// The receiver checks a delivery with the documented check and accepts it.
func TestDeliveryVerifies(t *testing.T) {
	srv, got := receiver(t)
	s := &webhook.Sender{Key: key, AllowPrivate: true, Backoff: fast}
	body := []byte(`{"type":"job.done","jobId":"j"}`)
	if err := s.Send(t.Context(), srv.URL+"/hook?token=x", "j.done", body); err != nil {
		t.Fatal(err)
	}
	d := got()
	if len(d) != 1 || string(d[0].body) != string(body) || d[0].header.Get(webhook.HeaderID) != "j.done" {
		t.Fatalf("got %d deliveries: %+v", len(d), d)
	}
	h := d[0].header
	if err := webhook.Verify(key, h.Get(webhook.HeaderTimestamp), h.Get(webhook.HeaderSignature), d[0].body, time.Now(), webhook.DefaultTolerance); err != nil {
		t.Fatalf("the receiver's check refuses a fresh delivery: %v", err)
	}
}

// A captured delivery replayed later, or altered, or signed with another
// key, is refused by the same check.
func TestReplayAndTamperingAreRefused(t *testing.T) {
	signedAt := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"job.done"}`)
	ts, sig := "1800000000", webhook.Sign(key, signedAt, body)
	if err := webhook.Verify(key, ts, sig, body, signedAt.Add(time.Minute), webhook.DefaultTolerance); err != nil {
		t.Fatalf("a delivery a minute old: %v", err)
	}
	for name, err := range map[string]error{
		"replayed an hour later": webhook.Verify(key, ts, sig, body, signedAt.Add(time.Hour), webhook.DefaultTolerance),
		"body altered":           webhook.Verify(key, ts, sig, []byte(`{"type":"job.failed"}`), signedAt, webhook.DefaultTolerance),
		"timestamp altered":      webhook.Verify(key, "1800003600", sig, body, signedAt.Add(time.Hour), webhook.DefaultTolerance),
		"another key":            webhook.Verify([]byte("another key, also 32 bytes long.."), ts, sig, body, signedAt, webhook.DefaultTolerance),
	} {
		want := webhook.ErrBadSignature
		if name == "replayed an hour later" {
			want = webhook.ErrStale
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

// What an error says of the URL is its host: the path and query may hold
// the receiver's token.
func TestErrorsDoNotQuoteTheURL(t *testing.T) {
	srv, _ := receiver(t, 400)
	s := &webhook.Sender{Key: key, AllowPrivate: true, Backoff: fast, Tries: 1}
	for _, u := range []string{srv.URL + "/hooks/SECRET-TOKEN?sig=SECRET-TOKEN", "http://127.0.0.1:1/hooks/SECRET-TOKEN", "ftp://example.com/SECRET-TOKEN"} {
		err := s.Send(t.Context(), u, "j.done", []byte(`{}`))
		if err == nil || strings.Contains(err.Error(), "SECRET-TOKEN") {
			t.Errorf("Send(%s) = %v", u, err)
		}
	}
}

// Busy or failing receivers are retried; a refusal is not.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		tries    int
		ok       bool
	}{
		{"unavailable twice", []int{503, 429}, 3, true},
		{"refused", []int{400}, 1, false},
		{"never up", []int{500, 500, 500, 500}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := receiver(t, tc.statuses...)
			s := &webhook.Sender{Key: key, AllowPrivate: true, Backoff: fast, Tries: 3}
			err := s.Send(t.Context(), srv.URL, "j.done", []byte(`{}`))
			if (err == nil) != tc.ok || len(got()) != tc.tries {
				t.Errorf("error %v after %d requests; want ok=%v after %d", err, len(got()), tc.ok, tc.tries)
			}
		})
	}
}

// The address guard: loopback, private, link-local and metadata addresses
// are refused unless configuration allows them, by URL and, for names, at
// the moment of connecting.
func TestGuard(t *testing.T) {
	for _, u := range []string{
		"http://example.com/hook",                  // not https
		"https://user:pass@example.com/hook",       // credentials in the URL
		"https://metadata.google.internal/x",       // GCP metadata
		"https://169.254.169.254/latest/meta-data", // AWS metadata (link-local)
		"https://10.0.0.7/hook", "https://192.168.1.1/", "https://172.16.0.1/", "https://100.64.0.1/",
		"https://[fd00::1]/", "https://[fe80::1]/", "https://0.0.0.0/", "https://127.0.0.1/", "https://[::1]/",
		"https://[::ffff:127.0.0.1]/", "https://0.1.2.3/", "https://192.0.0.192/", "https://198.18.0.1/", "https://240.0.0.1/",
		"https://[64:ff9b::a00:1]/", "https://[::10.0.0.1]/", "https://[2002:a00:1::]/", "https://[fec0::1]/",
	} {
		if err := webhook.CheckURL(u, false); err == nil {
			t.Errorf("CheckURL(%s) accepted it", u)
		}
	}
	for _, u := range []string{"https://example.com/hooks/helios?token=abc", "https://93.184.216.34/x"} {
		if err := webhook.CheckURL(u, false); err != nil {
			t.Errorf("CheckURL(%s): %v", u, err)
		}
	}
	// A name that resolves to loopback passes the URL check and is stopped
	// when connecting, without a retry.
	srv, got := receiver(t)
	var calls atomic.Int32
	s := &webhook.Sender{Key: key, Backoff: func() backoff.BackOff { calls.Add(1); return fast() }}
	err := s.Send(t.Context(), strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), "j.done", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "not a public address") || len(got()) != 0 {
		t.Errorf("to localhost: %v, %d deliveries; want a refusal and none", err, len(got()))
	}
	if err := s.Send(t.Context(), srv.URL, "j.done", []byte(`{}`)); err == nil || len(got()) != 0 {
		t.Errorf("to 127.0.0.1 without AllowPrivate: %v, %d deliveries", err, len(got()))
	}
}
