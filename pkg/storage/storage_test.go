package storage_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Every bucket kind the stages may run on passes the same suite: the
// conditional create that markers, locks and the lease rely on, JSON
// documents, file transfer (multipart on S3), listing, deleting, signing.
func TestConformance(t *testing.T) {
	s3, gcs := testkit.StartStores(t, "conformance")
	// A service account key signs GCS URLs here; on Cloud Run the service
	// account signs through the IAM Credentials API instead.
	keyPath := testServiceAccountKey(t)
	drivers := map[string]struct {
		url     string
		canSign bool
	}{
		"file": {t.TempDir(), false},
		"mem":  {"mem://", false},
		"s3":   {s3.BucketURL("conformance"), true},
		"gcs":  {gcs.BucketURL("conformance") + "?access_id=" + testAccessID + "&private_key_path=" + url.QueryEscape(keyPath), true},
	}
	for name, d := range drivers {
		t.Run(name, func(t *testing.T) {
			b, err := storage.Open(t.Context(), d.url)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			testCreate(t, b)
			testJSON(t, b)
			testFiles(t, b, d.canSign, gcs.Host)
			testListDelete(t, b)
		})
	}
	t.Run("s3 tags segments", func(t *testing.T) {
		b, err := storage.Open(t.Context(), drivers["s3"].url)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		src := filepath.Join(t.TempDir(), "seg.mp4")
		os.WriteFile(src, []byte("segment"), 0o600)
		if _, err := storage.UploadFile(t.Context(), b, src, "renders/j/chunks/000003.1.mp4", storage.SegmentTag); err != nil {
			t.Fatal(err)
		}
		if got := s3.Tagging("conformance", "renders/j/chunks/000003.1.mp4"); got != "helios-kind=segment" {
			t.Errorf("segment uploaded with tagging %q, want helios-kind=segment (the lifecycle rule matches it)", got)
		}
	})
}

func testCreate(t *testing.T, b *blob.Bucket) {
	ctx := t.Context()
	if err := storage.Create(ctx, b, "renders/j/chunks/000001.json", []byte("first")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	err := storage.Create(ctx, b, "renders/j/chunks/000001.json", []byte("second"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if got, _ := b.ReadAll(ctx, "renders/j/chunks/000001.json"); string(got) != "first" {
		t.Errorf("content after a refused create = %q", got)
	}
	// Racing creators: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := storage.Create(ctx, b, "renders/j/stitch.lock", []byte{byte('a' + i)})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("racing Create: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d racing creates won, want 1", wins.Load())
	}
}

func testJSON(t *testing.T, b *blob.Bucket) {
	ctx := t.Context()
	type doc struct{ A int }
	if err := storage.WriteJSON(ctx, b, "renders/j/status.json", doc{1}); err != nil {
		t.Fatal(err)
	}
	if err := storage.WriteJSON(ctx, b, "renders/j/status.json", doc{2}); err != nil {
		t.Fatal(err)
	}
	var got doc
	if err := storage.ReadJSON(ctx, b, "renders/j/status.json", &got); err != nil || got.A != 2 {
		t.Errorf("ReadJSON = %+v, %v", got, err)
	}
	if err := storage.ReadJSON(ctx, b, "renders/j/missing.json", &got); !storage.IsNotFound(err) {
		t.Errorf("ReadJSON of a missing key: %v, want not found", err)
	}
	if err := storage.CreateJSON(ctx, b, "renders/j/status.json", doc{3}); !errors.Is(err, storage.ErrExists) {
		t.Errorf("CreateJSON over a key: %v", err)
	}
}

func testFiles(t *testing.T, b *blob.Bucket, canSign bool, gcsHost string) {
	ctx := t.Context()
	dir := t.TempDir()
	data := make([]byte, 17<<20) // over the part sizes: multipart on S3, resumable on GCS
	rand.Read(data)
	src := filepath.Join(dir, "src.mp4")
	os.WriteFile(src, data, 0o600)
	n, err := storage.UploadFile(ctx, b, src, "renders/j/output.mp4")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("UploadFile = %d, %v", n, err)
	}
	// A published video is never replaced: a second upload, even racing,
	// writes nothing.
	if _, err := storage.UploadFileOnce(ctx, b, src, "renders/j/once.mp4"); err != nil {
		t.Fatalf("UploadFileOnce: %v", err)
	}
	other := filepath.Join(dir, "other.mp4")
	os.WriteFile(other, data[:1<<20], 0o600)
	if _, err := storage.UploadFileOnce(ctx, b, other, "renders/j/once.mp4"); !errors.Is(err, storage.ErrExists) {
		t.Errorf("second UploadFileOnce: %v, want ErrExists", err)
	}
	if attrs, err := b.Attributes(ctx, "renders/j/once.mp4"); err != nil || attrs.Size != int64(len(data)) {
		t.Errorf("after a refused upload: %+v %v", attrs, err)
	}
	dst := filepath.Join(dir, "dst.mp4")
	if n, err := storage.DownloadFile(ctx, b, "renders/j/output.mp4", dst); err != nil || n != int64(len(data)) {
		t.Fatalf("DownloadFile = %d, %v", n, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Error("downloaded bytes differ")
	}
	if _, err := storage.DownloadFile(ctx, b, "renders/j/output.mp4", dst); err == nil {
		t.Error("DownloadFile overwrote an existing file")
	}
	if _, err := storage.DownloadFile(ctx, b, "renders/j/none.mp4", filepath.Join(dir, "x")); !storage.IsNotFound(err) {
		t.Errorf("DownloadFile of a missing key: %v", err)
	}
	url, err := storage.PresignGet(ctx, b, "renders/j/output.mp4", 0)
	if !canSign {
		if err == nil {
			t.Errorf("PresignGet on a bucket that cannot sign returned %q", url)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if gcsHost != "" && strings.HasPrefix(url, "https://"+gcsHost+"/") {
		// The client signs for the emulator's host, over https.
		checkV4Signature(t, url)
		url = "http://" + strings.TrimPrefix(url, "https://")
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("GET presigned URL: %s, %d bytes", res.Status, len(got))
	}
}

func testListDelete(t *testing.T, b *blob.Bucket) {
	ctx := t.Context()
	for _, k := range []string{"renders/k/chunks/000000.json", "renders/k/chunks/000000.1.mp4", "renders/k/chunks/000001.json", "renders/kk/x"} {
		if err := b.WriteAll(ctx, k, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := storage.List(ctx, b, "renders/k/chunks/")
	if err != nil || len(keys) != 3 || keys[0] != "renders/k/chunks/000000.1.mp4" {
		t.Fatalf("List = %v, %v (want 3 keys in lexical order)", keys, err)
	}
	if err := storage.DeleteKeys(ctx, b, append(keys, "renders/k/never-there")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := storage.List(ctx, b, "renders/k/"); len(keys) != 0 {
		t.Errorf("left after DeleteKeys: %v", keys)
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://bucket?region=eu-west-1": "s3://bucket?region=eu-west-1",
		"mem://":                       "mem://",
	} {
		if got, err := storage.NormalizeURL(in); err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v", in, got, err)
		}
	}
	got, err := storage.NormalizeURL("data/helios")
	if err != nil || !filepath.IsAbs(got[len("file://"):len(got)-len("?create_dir=true&metadata=skip&no_tmp_dir=true")]) {
		t.Errorf("NormalizeURL(relative path) = %q, %v", got, err)
	}
	if got, _ := storage.NormalizeURL("file:///srv/h?metadata=x"); got != "file:///srv/h?create_dir=true&metadata=x&no_tmp_dir=true" {
		t.Errorf("NormalizeURL(file URL) = %q: defaults added, given values kept", got)
	}
	if _, err := storage.NormalizeURL(""); err == nil {
		t.Error("empty URL accepted")
	}
	if storage.BucketName("s3://renders?region=x") != "renders" || storage.BucketName("file:///tmp") != "" {
		t.Error("BucketName")
	}
}

// Listing a local folder while other writers publish into it neither fails
// nor returns their temp files.
func TestListWhileWriting(t *testing.T) {
	b, err := storage.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Two writers each publishing every millisecond: far busier than a job
	// folder (status every second, lease renewals, markers).
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				_ = b.WriteAll(t.Context(), "renders/j/lease."+strconv.Itoa(w*100000+i%50), []byte("x"), nil)
			}
		})
	}
	for range 200 {
		keys, err := storage.List(t.Context(), b, "renders/j/")
		if err != nil {
			t.Fatalf("List during writes: %v", err)
		}
		for _, k := range keys {
			if filepath.Ext(k) == ".tmp" {
				t.Fatalf("List returned a temp file: %s", k)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// A document rewritten on a local folder is never read half written.
func TestReadWhileRewriting(t *testing.T) {
	b, err := storage.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	type doc struct{ N int }
	if err := storage.WriteJSON(t.Context(), b, "renders/j/status.json", doc{0}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < 300; i++ {
			_ = storage.WriteJSON(t.Context(), b, "renders/j/status.json", doc{i})
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		var d doc
		if err := storage.ReadJSON(t.Context(), b, "renders/j/status.json", &d); err != nil {
			t.Fatalf("read during rewrites: %v", err)
		}
	}
}
