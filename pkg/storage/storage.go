// Package storage opens the bucket that carries everything between the stages
// and holds the few helpers the stages share. A bucket is a gocloud.dev
// *blob.Bucket opened from a URL: file:///abs/dir, mem://,
// s3://bucket?region=…[&endpoint=http://host:port&use_path_style=true] for S3
// and S3-compatible servers (credentials from the usual AWS chain), or
// gs://bucket for Google Cloud Storage (Application Default Credentials;
// STORAGE_EMULATOR_HOST points it at an emulator).
package storage

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/gcsblob"  // gs://
	_ "gocloud.dev/blob/memblob"  // mem://
	_ "gocloud.dev/blob/s3blob"   // s3://
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Open opens a bucket from a URL. A plain path (./data, /srv/helios) is taken
// as a local folder and created if missing. Its requests are counted in
// the counter of their context (WithOps), for the job's cost.
func Open(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	u, err := NormalizeURL(rawURL)
	if err != nil {
		return nil, err
	}
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open storage %q: %w", rawURL, err)
	}
	return countRequests(b), nil
}

// NormalizeURL turns a plain path into a file:// URL (absolute, created on
// open, temp files beside the target so renames stay on one filesystem, no
// attribute sidecar files: fileblob writes those in place, and a reader
// could see one half written) and returns other URLs unchanged.
func NormalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("storage URL is empty: set HELIOS_STORAGE_URL or --storage (a folder, file:///dir or s3://bucket)")
	}
	var u *url.URL
	if strings.Contains(raw, "://") {
		var err error
		if u, err = url.Parse(raw); err != nil {
			return "", fmt.Errorf("storage URL %q: %w", raw, err)
		}
		if u.Scheme != "file" {
			return raw, nil
		}
	} else {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return "", fmt.Errorf("storage path %q: %w", raw, err)
		}
		u = &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	}
	q := u.Query()
	for k, v := range map[string]string{"create_dir": "true", "no_tmp_dir": "true", "metadata": "skip"} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// LocalDir returns the folder a file:// URL or plain path names.
func LocalDir(rawURL string) (string, bool) {
	n, err := NormalizeURL(rawURL)
	if err != nil {
		return "", false
	}
	u, err := url.Parse(n)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return filepath.FromSlash(u.Path), true
}

// ErrExists is returned by Create when the key is already there.
var ErrExists = errors.New("already exists")

// IsNotFound reports whether err means the key does not exist.
func IsNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

// Create writes data to key only if key does not exist yet (S3 If-None-Match,
// GCS ifGenerationMatch=0). It returns ErrExists if another writer got there
// first. On a local folder the check is exclusive within one process only
// (gocloud's fileblob): processes sharing a folder must coordinate
// themselves, as `helios job run` does with a file lock per job.
func Create(ctx context.Context, b *blob.Bucket, key string, data []byte) error {
	err := b.WriteAll(ctx, key, data, &blob.WriterOptions{IfNotExist: true, ContentType: contentType(key)})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("create %s: %w", key, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}

// CreateJSON is Create for a JSON document.
func CreateJSON(ctx context.Context, b *blob.Bucket, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return Create(ctx, b, key, data)
}

// WriteJSON replaces key with v as JSON. The object appears whole or not at all.
func WriteJSON(ctx context.Context, b *blob.Bucket, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// ReadJSON decodes key into v. A missing key is reported with IsNotFound.
func ReadJSON(ctx context.Context, b *blob.Bucket, key string, v any) error {
	data, err := b.ReadAll(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// Tag is an object tag.
type Tag struct{ Key, Value string }

// SegmentTag marks chunk segments, so a bucket lifecycle rule can expire the
// ones a failed or cancelled job leaves behind (neither S3 nor GCS rules can
// match renders/*/chunks/ by prefix).
var SegmentTag = Tag{Key: "helios-kind", Value: "segment"}

// tagging marks an upload with tags: S3 object tags, or on GCS the object's
// custom time (a lifecycle rule on daysSinceCustomTime matches only objects
// that have one) plus the tags as metadata.
func tagging(tags []Tag) func(func(any) bool) error {
	if len(tags) == 0 {
		return nil
	}
	q := url.Values{}
	for _, t := range tags {
		q.Set(t.Key, t.Value)
	}
	encoded := q.Encode()
	return func(as func(any) bool) error {
		var in *transfermanager.UploadObjectInput
		if as(&in) {
			in.Tagging = &encoded
		}
		var gw *storage.Writer
		if as(&gw) {
			gw.CustomTime = time.Now().UTC()
			if gw.Metadata == nil {
				gw.Metadata = map[string]string{}
			}
			for _, t := range tags {
				gw.Metadata[t.Key] = t.Value
			}
		}
		return nil
	}
}

// DownloadFile copies key into a new local file at path.
func DownloadFile(ctx context.Context, b *blob.Bucket, key, path string) (int64, error) {
	return Download(ctx, b, key, path, 0o600)
}

// Download is DownloadFile creating path with perm (less the umask).
func Download(ctx context.Context, b *blob.Bucket, key, path string, perm os.FileMode) (int64, error) {
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", key, err)
	}
	defer r.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", key, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("download %s: %w", key, err)
	}
	return n, nil
}

// UploadFile copies a local file to key. The object is published only when
// the whole file has been written: a failure or cancellation leaves nothing.
// tags become S3 object tags, or a custom time and metadata on GCS (lifecycle
// rules match them); other stores ignore them.
func UploadFile(ctx context.Context, b *blob.Bucket, path, key string, tags ...Tag) (int64, error) {
	return upload(ctx, b, path, key, false, tags)
}

// UploadFileOnce is UploadFile that never replaces an object: if key
// exists it writes nothing and returns ErrExists (S3 If-None-Match, GCS
// ifGenerationMatch=0).
func UploadFileOnce(ctx context.Context, b *blob.Bucket, path, key string, tags ...Tag) (int64, error) {
	if ok, err := b.Exists(ctx, key); err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, err)
	} else if ok {
		return 0, fmt.Errorf("upload %s: %w", key, ErrExists) // no need to send the bytes
	}
	return upload(ctx, b, path, key, true, tags)
}

func upload(ctx context.Context, b *blob.Bucket, path, key string, once bool, tags []Tag) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, err)
	}
	defer f.Close()
	return write(ctx, b, key, f, once, tags)
}

// WriteOnce streams r to key and publishes it only if r ends without an
// error and key does not exist yet (ErrExists then); on any failure
// nothing is at key.
func WriteOnce(ctx context.Context, b *blob.Bucket, key string, r io.Reader) (int64, error) {
	return write(ctx, b, key, r, true, nil)
}

func write(ctx context.Context, b *blob.Bucket, key string, r io.Reader, once bool, tags []Tag) (int64, error) {
	ctx, cancel := context.WithCancel(ctx) // cancelling aborts the write
	defer cancel()
	w, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType(key), BeforeWrite: tagging(tags), IfNotExist: once})
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, err)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		cancel()
		_ = w.Close()
		return n, fmt.Errorf("upload %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return n, fmt.Errorf("upload %s: %w", key, ErrExists)
		}
		return n, fmt.Errorf("upload %s: %w", key, err)
	}
	return n, nil
}

// FileSums are the hex SHA-256 and MD5 of a local file, read once: the
// SHA-256 is what a segment's marker promises, the MD5 what most stores
// keep of an object, so a stitcher that does not read a segment can
// still compare it.
func FileSums(path string) (sha, md5sum string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	hs, hm := sha256.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(hs, hm), f); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(hs.Sum(nil)), hex.EncodeToString(hm.Sum(nil)), nil
}

// FileSHA256 is the hex SHA-256 of a local file: what a segment's marker
// promises and the stitcher checks.
func FileSHA256(path string) (string, error) {
	sum, _, err := FileSums(path)
	return sum, err
}

// List returns every key under prefix.
//
// On a local folder, writes go through a temp file next to the target
// (renamed into place when complete): those are not keys, and one renamed
// away mid-listing makes the listing fail with NotFound, so it is redone.
func List(ctx context.Context, b *blob.Bucket, prefix string) ([]string, error) {
	objs, err := ListObjects(ctx, b, prefix)
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, err
}

// ListObjects is List with each object's size and MD5 (where the store
// keeps one).
func ListObjects(ctx context.Context, b *blob.Bucket, prefix string) ([]*blob.ListObject, error) {
	for try := 1; ; try++ {
		objs, err := list(ctx, b, prefix)
		if err == nil || !IsNotFound(err) || try == 20 {
			return objs, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try) * 5 * time.Millisecond):
		}
	}
}

// tempName matches fileblob's temp files: <key>.<hex nanoseconds>.tmp.
var tempName = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// listPage is the page size asked for: S3 and GCS return at most 1,000
// keys a request whatever is asked, but a local folder is walked whole
// for every page, so fewer pages save it walks (a job's chunks folder
// holds 20,000 files for 10,000 chunks).
const listPage = 10_000

func list(ctx context.Context, b *blob.Bucket, prefix string) ([]*blob.ListObject, error) {
	var objs []*blob.ListObject
	opts := &blob.ListOptions{Prefix: prefix}
	for token := blob.FirstPageToken; len(token) > 0; {
		page, next, err := b.ListPage(ctx, token, listPage, opts)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range page {
			if !obj.IsDir && !tempName.MatchString(obj.Key) {
				objs = append(objs, obj)
			}
		}
		token = next
	}
	return objs, nil
}

// DeleteKeys removes keys, several at a time; keys already gone are fine.
func DeleteKeys(ctx context.Context, b *blob.Bucket, keys []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, key := range keys {
		g.Go(func() error {
			if err := b.Delete(ctx, key); err != nil && !IsNotFound(err) {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// PresignGet returns a URL that downloads key without credentials until it
// expires: SigV4 on S3, a V4 signed URL on GCS (signed with the service
// account's key, or on Cloud Run by the service account itself through the
// IAM Credentials API). Buckets that cannot sign (a local folder) return an
// error.
func PresignGet(ctx context.Context, b *blob.Bucket, key string, expiry time.Duration) (string, error) {
	u, err := b.SignedURL(ctx, key, &blob.SignedURLOptions{Method: http.MethodGet, Expiry: expiry,
		BeforeSign: func(as func(any) bool) error {
			var opts *storage.SignedURLOptions
			if as(&opts) {
				opts.Scheme = storage.SigningSchemeV4 // gcsblob's default is V2
			}
			return nil
		}})
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return u, nil
}

// BucketName is the bucket an s3:// or gs:// URL names ("" for others): the
// name events carry.
func BucketName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "s3" && u.Scheme != "gs") {
		return ""
	}
	return u.Host
}

// contentType is stored with an object so a browser given its URL plays
// a video (the segment formats' types come from job.Formats) or shows JSON.
func contentType(key string) string {
	if f, ok := job.FormatOf(key); ok {
		return f.ContentType
	}
	if strings.HasSuffix(key, ".json") {
		return "application/json"
	}
	return "application/octet-stream"
}
