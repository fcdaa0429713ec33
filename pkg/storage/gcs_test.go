package storage_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/gcplocal"
	"github.com/helios-project/infrastructure/pkg/storage"
)

const testAccessID = "helios-test@helios-local.iam.gserviceaccount.com"

// testKey is the service account key the GCS driver signs with in tests.
var testKey *rsa.PrivateKey

func testServiceAccountKey(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	testKey = key
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkV4Signature verifies a V4 signed GCS URL against the test key, as
// Cloud Storage does: the canonical request, the string to sign, the RSA
// signature over its SHA-256.
func checkV4Signature(t *testing.T, signed string) {
	t.Helper()
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256" || !strings.HasPrefix(q.Get("X-Goog-Credential"), testAccessID+"/") {
		t.Fatalf("signed URL is not V4 by %s: %s", testAccessID, signed)
	}
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	q.Del("X-Goog-Signature")
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, url.QueryEscape(k)+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	slices.Sort(pairs)
	canonical := strings.Join([]string{"GET", u.EscapedPath(), strings.Join(pairs, "&"),
		"host:" + u.Hostname() + "\n", q.Get("X-Goog-SignedHeaders"), "UNSIGNED-PAYLOAD"}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	scope := strings.TrimPrefix(q.Get("X-Goog-Credential"), testAccessID+"/")
	toSign := strings.Join([]string{"GOOG4-RSA-SHA256", q.Get("X-Goog-Date"), scope, hex.EncodeToString(sum[:])}, "\n")
	digest := sha256.Sum256([]byte(toSign))
	if err := rsa.VerifyPKCS1v15(&testKey.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signed URL does not verify with the service account's key: %v\ncanonical request:\n%s", err, canonical)
	}
}

// Segments uploaded to GCS carry a custom time (the lifecycle rule expires
// leftover segments by daysSinceCustomTime) and the tag as metadata; other
// objects have neither.
func TestGCSSegmentCustomTime(t *testing.T) {
	gcs, err := gcplocal.StartGCS("tags")
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	for k, v := range gcs.Env() {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	b, err := storage.Open(ctx, gcs.BucketURL("tags"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src := filepath.Join(t.TempDir(), "seg.mp4")
	os.WriteFile(src, []byte("segment"), 0o600)
	before := time.Now().Add(-time.Second)
	for key, tags := range map[string][]storage.Tag{
		"renders/j/chunks/000003.1-1.mp4": {storage.SegmentTag},
		"renders/j/output.mp4":            nil,
	} {
		if _, err := storage.UploadFile(ctx, b, src, key, tags...); err != nil {
			t.Fatal(err)
		}
		attrs, err := gcs.Object(ctx, "tags", key)
		if err != nil {
			t.Fatal(err)
		}
		if tagged := len(tags) > 0; tagged != !attrs.CustomTime.IsZero() {
			t.Errorf("%s: custom time %v (tagged %v)", key, attrs.CustomTime, tagged)
		}
		if len(tags) > 0 && (attrs.CustomTime.Before(before) || attrs.Metadata["helios-kind"] != "segment") {
			t.Errorf("%s: custom time %v, metadata %v", key, attrs.CustomTime, attrs.Metadata)
		}
		if attrs.ContentType != "video/mp4" {
			t.Errorf("%s: content type %q", key, attrs.ContentType)
		}
	}
}
