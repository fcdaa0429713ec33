// Package gcplocal runs the Google Cloud deployment on loopback: a GCS
// server (fake-gcs-server, in process) that publishes object notifications
// to a Pub/Sub server (pstest, in process), a push relay that delivers
// subscriptions over HTTP the way Pub/Sub push does, and the function
// binaries served by functions-framework-go behind a front that behaves like
// Cloud Run (instances of fixed concurrency, 429 when none is free). Tests
// and `make demo-gcp-local` use it; nothing here reaches Google.
package gcplocal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// Environment variables the Google client libraries read to reach emulators.
const (
	EnvStorageEmulator = "STORAGE_EMULATOR_HOST"
	EnvPubSubEmulator  = "PUBSUB_EMULATOR_HOST"
)

// GCS is a GCS-compatible server on loopback. It honours conditional
// creates (ifGenerationMatch=0), resumable uploads, compose (with the
// destination's preconditions and deleteSourceObjects: composeRules) and
// notification configs (published to the Pub/Sub server that
// PUBSUB_EMULATOR_HOST names when the notification fires).
type GCS struct {
	Host string // 127.0.0.1:port: STORAGE_EMULATOR_HOST
	srv  *fakestorage.Server
	http *http.Server
}

// StartGCS starts the server with the given buckets created.
func StartGCS(buckets ...string) (*GCS, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		// Served below, behind composeRules.
		NoListener: true,
		// Without it the client reads through the XML API and sees nothing.
		PublicHost: "127.0.0.1",
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start GCS server: %w", err)
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	g := &GCS{Host: ln.Addr().String(), srv: srv}
	g.http = &http.Server{Handler: &composeRules{srv: srv, next: srv.HTTPHandler()}, ReadHeaderTimeout: 10 * time.Second}
	go g.http.Serve(ln)
	return g, nil
}

// Env is what points the storage clients (cloud.google.com/go/storage and
// gocloud's gcsblob) of a process at this server.
func (g *GCS) Env() map[string]string { return map[string]string{EnvStorageEmulator: g.Host} }

// BucketURL is a bucket's HELIOS_STORAGE_URL (the process needs Env).
func (g *GCS) BucketURL(bucket string) string { return "gs://" + bucket }

// Client is a storage client of this server, in process (no sockets) and
// through composeRules like every other client.
func (g *GCS) Client() *storage.Client {
	hc := &http.Client{Transport: handlerTransport{g.http.Handler}}
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(hc), option.WithCredentials(&google.Credentials{}))
	if err != nil {
		panic(err) // only for invalid options
	}
	return client
}

// handlerTransport serves a client's requests with a handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Object returns an object's attributes as the server keeps them.
func (g *GCS) Object(ctx context.Context, bucket, key string) (*storage.ObjectAttrs, error) {
	return g.Client().Bucket(bucket).Object(key).Attrs(ctx)
}

// Close stops the server.
func (g *GCS) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.http.Shutdown(ctx)
	g.srv.Stop()
}
