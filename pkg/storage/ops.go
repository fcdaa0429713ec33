package storage

import (
	"cmp"
	"context"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Ops counts the storage requests made with a context it was put in
// (WithOps): a worker's for one invocation, an orchestrator's for one run.
type Ops struct {
	put, get, list atomic.Int64
}

// Counts is what o has counted.
func (o *Ops) Counts() job.RequestCounts {
	return job.RequestCounts{Put: o.put.Load(), Get: o.get.Load(), List: o.list.Load()}
}

type opsKey struct{}

// WithOps returns ctx whose storage requests o counts (instead of any
// counter ctx carried before: an in-process worker counts its own).
func WithOps(ctx context.Context, o *Ops) context.Context {
	return context.WithValue(ctx, opsKey{}, o)
}

// count adds to the counter of ctx, if any. Requests that bypass the
// bucket (the provider clients concat uses) count themselves through it.
func count(ctx context.Context, c job.RequestCounts) {
	o, _ := ctx.Value(opsKey{}).(*Ops)
	if o == nil {
		return
	}
	o.put.Add(c.Put)
	o.get.Add(c.Get)
	o.list.Add(c.List)
}

// partSize is the part size of the S3 driver's multipart uploads (the AWS
// transfer manager's default), which a large write is split into.
const partSize = 8 << 20

// putRequests is how many requests writing n bytes takes: one, or a
// multipart upload's create, parts and complete. (Cloud Storage's
// resumable uploads are close: a start, then 16 MiB chunks.)
func putRequests(n int64) int64 {
	if n <= partSize {
		return 1
	}
	return (n+partSize-1)/partSize + 2
}

// counting is a blob driver over an opened bucket that counts every
// request in the counter of its context. All it does besides is pass the
// call on, so the bucket behaves as the provider's.
type counting struct {
	b *blob.Bucket
	// headBeforeDelete: the S3 driver asks whether a key exists before it
	// deletes it (a delete is free, the HEAD is not).
	headBeforeDelete bool
}

// countRequests wraps b so that its requests are counted (WithOps).
func countRequests(b *blob.Bucket) *blob.Bucket {
	var client *s3.Client
	return blob.NewBucket(&counting{b: b, headBeforeDelete: b.As(&client)})
}

func (c *counting) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (c *counting) As(i any) bool                          { return c.b.As(i) }
func (c *counting) ErrorAs(err error, i any) bool          { return c.b.ErrorAs(err, i) }
func (c *counting) Close() error                           { return c.b.Close() }

func (c *counting) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	count(ctx, job.RequestCounts{Get: 1})
	a, err := c.b.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		CacheControl: a.CacheControl, ContentDisposition: a.ContentDisposition, ContentEncoding: a.ContentEncoding,
		ContentLanguage: a.ContentLanguage, ContentType: a.ContentType, Metadata: a.Metadata,
		CreateTime: a.CreateTime, ModTime: a.ModTime, Size: a.Size, MD5: a.MD5, ETag: a.ETag, AsFunc: a.As,
	}, nil
}

func (c *counting) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	count(ctx, job.RequestCounts{List: 1})
	token := opts.PageToken
	if len(token) == 0 {
		token = blob.FirstPageToken
	}
	// 1,000 is the page the S3 and GCS APIs return unless asked otherwise.
	objs, next, err := c.b.ListPage(ctx, token, cmp.Or(opts.PageSize, 1000), &blob.ListOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter, BeforeList: opts.BeforeList})
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next, Objects: make([]*driver.ListObject, len(objs))}
	for i, o := range objs {
		page.Objects[i] = &driver.ListObject{Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir, AsFunc: o.As}
	}
	return page, nil
}

func (c *counting) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	count(ctx, job.RequestCounts{Get: 1})
	r, err := c.b.NewRangeReader(ctx, key, offset, length, &blob.ReaderOptions{BeforeRead: opts.BeforeRead})
	if err != nil {
		return nil, err
	}
	return countingReader{r}, nil
}

type countingReader struct{ *blob.Reader }

func (r countingReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}
}

func (c *counting) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	w, err := c.b.NewWriter(ctx, key, &blob.WriterOptions{
		BufferSize: opts.BufferSize, MaxConcurrency: opts.MaxConcurrency, CacheControl: opts.CacheControl,
		ContentDisposition: opts.ContentDisposition, ContentEncoding: opts.ContentEncoding, ContentLanguage: opts.ContentLanguage,
		ContentType: contentType, ContentMD5: opts.ContentMD5, Metadata: opts.Metadata,
		DisableContentTypeDetection: true, BeforeWrite: opts.BeforeWrite, IfNotExist: opts.IfNotExist,
	})
	if err != nil {
		return nil, err
	}
	return &countingWriter{w: w, ctx: ctx}, nil
}

// countingWriter counts its requests when it closes: how many depends on
// the size written.
type countingWriter struct {
	w   *blob.Writer
	ctx context.Context
	n   int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Close() error {
	count(w.ctx, job.RequestCounts{Put: putRequests(w.n)})
	return w.w.Close()
}

func (c *counting) Copy(ctx context.Context, dst, src string, opts *driver.CopyOptions) error {
	count(ctx, job.RequestCounts{Put: 1})
	return c.b.Copy(ctx, dst, src, &blob.CopyOptions{BeforeCopy: opts.BeforeCopy})
}

func (c *counting) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if c.headBeforeDelete {
		count(ctx, job.RequestCounts{Get: 1})
	}
	return c.b.DeleteWithOptions(ctx, key, &blob.DeleteOptions{BeforeDelete: opts.BeforeDelete})
}

func (c *counting) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return c.b.SignedURL(ctx, key, &blob.SignedURLOptions{Expiry: opts.Expiry, Method: opts.Method,
		ContentType: opts.ContentType, EnforceAbsentContentType: opts.EnforceAbsentContentType, BeforeSign: opts.BeforeSign})
}
