package pagefetch_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
)

// origin is an HTTPS server standing for a font service: the CSS answers
// by User-Agent, /big is larger than the test's limit, /away redirects to
// another origin.
func origin(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/css":
			w.Header().Set("Content-Type", "text/css")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Set-Cookie", "track=1")
			fmt.Fprintf(w, "/* for %s; cookie %q */", r.UserAgent(), r.Header.Get("Cookie"))
		case "/big":
			w.Write(make([]byte, 2048))
		case "/away":
			http.Redirect(w, r, "https://elsewhere.example/x", http.StatusFound)
		case "/fail":
			http.Error(w, "gone", http.StatusNotFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// ask sends one request as the renderer does: absolute-form, over the
// Unix socket.
func ask(t *testing.T, sock, method, rawURL, ua string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\nCookie: secret=1\r\nConnection: close\r\n\r\n", method, rawURL, ua)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func serve(t *testing.T, f *pagefetch.Fetcher) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fetch.sock")
	c, err := f.Serve(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sock
}

func TestFetcher(t *testing.T) {
	srv, hits := origin(t)
	f, err := pagefetch.New([]string{"https://Example.com:443/"}, pagefetch.Options{Client: testkit.ClientTo(srv), MaxBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	sock := serve(t, f)

	for _, tc := range []struct {
		name, method, url, ua string
		status                int
		refused               bool
		body                  string
	}{
		{"an allowed origin", "GET", "https://example.com/css?family=Test", "Chrome/156", 200, false, `/* for Chrome/156; cookie "" */`},
		{"again: from the cache", "GET", "https://example.com/css?family=Test", "Chrome/156", 200, false, `/* for Chrome/156; cookie "" */`},
		{"another browser gets its own", "GET", "https://example.com/css?family=Test", "Firefox/140", 200, false, `/* for Firefox/140; cookie "" */`},
		{"a HEAD", "HEAD", "https://example.com/css?family=Test", "Chrome/156", 200, false, ""},
		{"an origin not allowed", "GET", "https://fonts.googleapis.com/css2", "Chrome/156", 403, true, "https://fonts.googleapis.com is not an origin this deployment fetches for pages (HELIOS_RENDER_ORIGINS: https://example.com)"},
		{"another port is another origin", "GET", "https://example.com:8443/css", "Chrome/156", 403, true, "https://example.com:8443 is not an origin"},
		{"a POST", "POST", "https://example.com/css", "Chrome/156", 403, true, "may only GET"},
		{"a redirect to another origin", "GET", "https://example.com/away", "Chrome/156", 403, true, "redirects to https://elsewhere.example"},
		{"too large", "GET", "https://example.com/big", "Chrome/156", 403, true, "larger than"},
		{"a 404 passes through", "GET", "https://example.com/fail", "Chrome/156", 404, false, "gone\n"},
		{"not a proxy request", "GET", "/css", "Chrome/156", 403, true, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ask(t, sock, tc.method, tc.url, tc.ua)
			if resp.StatusCode != tc.status || (resp.Header.Get(pagefetch.HeaderRefused) != "") != tc.refused || !strings.Contains(body, tc.body) {
				t.Fatalf("%d refused=%q %q; want %d refused=%v, a body with %q", resp.StatusCode, resp.Header.Get(pagefetch.HeaderRefused), body, tc.status, tc.refused, tc.body)
			}
			if tc.status == 200 && (resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Set-Cookie") != "") {
				t.Errorf("headers %v: want CORS passed on and no cookie", resp.Header)
			}
		})
	}
	// css twice (once cached) and by two browsers, away, big, fail.
	if got := hits.Load(); got != 5 {
		t.Errorf("the origin was asked %d times, want 5 (the repeated request comes from the cache)", got)
	}
}

// With no origin configured every request is refused, saying how to allow
// it; and the deployment's client reaches public addresses only.
func TestFetcherRefuses(t *testing.T) {
	none, err := pagefetch.New(nil, pagefetch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := ask(t, serve(t, none), "GET", "https://fonts.gstatic.com/s/x.woff2", "")
	if resp.StatusCode != 403 || !strings.Contains(body, "HELIOS_RENDER_ORIGINS is empty; add https://fonts.gstatic.com") {
		t.Errorf("no origins: %d %q", resp.StatusCode, body)
	}
	srv, hits := origin(t)
	guarded, err := pagefetch.New([]string{srv.URL}, pagefetch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = ask(t, serve(t, guarded), "GET", srv.URL+"/css", "")
	if resp.StatusCode != 403 || !strings.Contains(body, "not public") || hits.Load() != 0 {
		t.Errorf("a loopback origin: %d %q after %d requests; want a refusal and none", resp.StatusCode, body, hits.Load())
	}
	down, err := pagefetch.New([]string{"https://example.com"}, pagefetch.Options{Client: &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, fmt.Errorf("connection refused") },
	}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = ask(t, serve(t, down), "GET", "https://example.com/css", "")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(pagefetch.HeaderRefused) != "" || !strings.Contains(body, "connection refused") {
		t.Errorf("an origin that cannot be reached: %d %q; want 502, retryable", resp.StatusCode, body)
	}
}

func TestOrigin(t *testing.T) {
	for raw, want := range map[string]string{
		"https://fonts.gstatic.com":      "https://fonts.gstatic.com",
		"https://Fonts.GStatic.com:443/": "https://fonts.gstatic.com",
		"http://cdn.example:8080":        "http://cdn.example:8080",
		"https://[2001:db8::1]:443":      "https://[2001:db8::1]",
	} {
		if got, err := pagefetch.Origin(raw); err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"fonts.gstatic.com", "ftp://x", "https://u:p@x", "https://x/path", "https://x?q=1", "https://"} {
		if _, err := pagefetch.Origin(raw); err == nil {
			t.Errorf("Origin(%q) accepted it", raw)
		}
	}
}

// A socket path longer than a socket address holds still listens (through
// the directory's descriptor), and is reached by its name from inside the
// directory, as the renderer reaches it from its work dir.
func TestServeLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 40))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := pagefetch.New(nil, pagefetch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ".helios-fetch-0123abcd.sock")
	c, err := f.Serve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Chdir(dir)
	resp, body := ask(t, ".helios-fetch-0123abcd.sock", "GET", "https://fonts.gstatic.com/x", "")
	if resp.StatusCode != 403 || !strings.Contains(body, "HELIOS_RENDER_ORIGINS") {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}

// What is kept, and for how long: an origin's no-store, no-cache and
// private are not kept; max-age bounds the keeping (at most a day), an hour
// without one. At most InFlight fetches run at once, whatever the pages ask.
func TestFetcherKeeps(t *testing.T) {
	var hits, running, most atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		switch r.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=600")
		case "/minute":
			w.Header().Set("Cache-Control", "public, max-age=60")
		case "/slow":
			time.Sleep(50 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer srv.Close()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f, err := pagefetch.New([]string{"https://example.com"}, pagefetch.Options{Client: testkit.ClientTo(srv), InFlight: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sock := serve(t, f)
	get := func(path string) {
		t.Helper()
		if resp, body := ask(t, sock, "GET", "https://example.com"+path, ""); resp.StatusCode != 200 || body != path {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	for _, tc := range []struct {
		path  string
		after time.Duration // the clock moves on this much before the second request
		hits  int32         // requests the origin saw for both
	}{
		{"/nostore", 0, 2},
		{"/private", 0, 2},
		{"/minute", 59 * time.Second, 1},
		{"/plain", 59 * time.Minute, 1},
	} {
		before := hits.Load()
		get(tc.path)
		now = now.Add(tc.after)
		get(tc.path)
		if got := hits.Load() - before; got != tc.hits {
			t.Errorf("%s twice, %s apart: the origin was asked %d times, want %d", tc.path, tc.after, got, tc.hits)
		}
	}
	before := hits.Load()
	now = now.Add(2 * time.Minute)
	get("/minute")
	if hits.Load() == before {
		t.Error("an expired response was served from the cache")
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if resp, _ := ask(t, sock, "GET", fmt.Sprintf("https://example.com/slow?%d", i), ""); resp.StatusCode != 200 {
				t.Errorf("slow %d: %d", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if most.Load() > 2 {
		t.Errorf("%d fetches ran at once, want at most 2", most.Load())
	}
	if resp, body := ask(t, sock, "GET", "https://user:secret@example.com/plain", ""); resp.StatusCode != 403 || !strings.Contains(body, "user or password") {
		t.Errorf("a URL with credentials: %d %q", resp.StatusCode, body)
	}
}
