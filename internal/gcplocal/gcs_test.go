package gcplocal_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/helios-project/infrastructure/internal/gcplocal"
)

// Compose as Cloud Storage does it: at most 32 sources a call, the
// destination's preconditions, 404 for a missing source, sources deleted
// on request; through a client over HTTP (as gcsblob reaches the server)
// and through GCS.Client.
func TestCompose(t *testing.T) {
	gcs, err := gcplocal.StartGCS("b")
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	for k, v := range gcs.Env() {
		t.Setenv(k, v)
	}
	overHTTP, err := storage.NewClient(t.Context(), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer overHTTP.Close()
	for name, client := range map[string]*storage.Client{"over HTTP": overHTTP, "in process": gcs.Client()} {
		t.Run(name, func(t *testing.T) { testCompose(t, client.Bucket("b")) })
	}
}

func testCompose(t *testing.T, b *storage.BucketHandle) {
	ctx := t.Context()
	var srcs []*storage.ObjectHandle
	var want strings.Builder
	for i := range 33 {
		o := b.Object(fmt.Sprintf("src/%02d", i))
		w := o.NewWriter(ctx)
		fmt.Fprintf(w, "<%d>", i)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&want, "<%d>", i)
		srcs = append(srcs, o)
	}
	absent := storage.Conditions{DoesNotExist: true}

	if _, err := b.Object("out/33").ComposerFrom(srcs...).Run(ctx); httpCode(err) != http.StatusBadRequest {
		t.Errorf("compose of 33 sources: %v, want 400 (Cloud Storage takes 32)", err)
	}
	if _, err := b.Object("out/a").If(absent).ComposerFrom(srcs[:32]...).Run(ctx); err != nil {
		t.Fatalf("compose of 32 sources: %v", err)
	}
	if _, err := b.Object("out/a").If(absent).ComposerFrom(srcs[:2]...).Run(ctx); httpCode(err) != http.StatusPreconditionFailed {
		t.Errorf("compose onto an existing object if it does not exist: %v, want 412", err)
	}
	if got := read(t, b.Object("out/a")); got != strings.TrimSuffix(want.String(), "<32>") {
		t.Errorf("out/a = %q after a refused compose", got)
	}
	if _, err := b.Object("out/b").ComposerFrom(srcs[0], b.Object("src/none")).Run(ctx); httpCode(err) != http.StatusNotFound {
		t.Errorf("compose with a missing source: %v, want 404", err)
	}
	if _, err := b.Object("out/b").Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("a failed compose left out/b: %v", err)
	}

	c := b.Object("out/c").ComposerFrom(b.Object("out/a"), srcs[32])
	c.DeleteSourceObjects = true
	if _, err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b.Object("out/c")); got != want.String() {
		t.Errorf("out/c = %q", got)
	}
	for _, o := range []*storage.ObjectHandle{b.Object("out/a"), srcs[32]} {
		if _, err := o.Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
			t.Errorf("%s is still there after a compose that deletes its sources: %v", o.ObjectName(), err)
		}
	}
	// Clean for the next client.
	for _, o := range append(srcs[:32], b.Object("out/c")) {
		if err := o.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func httpCode(err error) int {
	var e *googleapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func read(t *testing.T, o *storage.ObjectHandle) string {
	t.Helper()
	r, err := o.NewReader(t.Context())
	if err != nil {
		t.Fatalf("read %s: %v", o.ObjectName(), err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
