package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"

	"github.com/helios-project/infrastructure/pkg/job"
)

// gcsMaxComposeSources is how many objects one GCS compose joins.
const gcsMaxComposeSources = 32

// concatGCS composes the sources into dst on the server. Up to 32 sources
// take one compose; more are composed 32 at a time into intermediate
// objects, those again, and so on (a tree, ⌈log32 N⌉ levels: 10,000
// sources take 313 + 10 + 1 composes), the last compose creating dst only
// if it does not exist (ifGenerationMatch=0). A compose whose sources are
// all intermediates deletes them as it succeeds (a hard delete, not kept
// by soft delete); after a failure the intermediates left are deleted.
func concatGCS(ctx context.Context, b *blob.Bucket, client *storage.Client, dst string, srcs []string, limit int, stats *ConcatStats, calls *atomic.Int64) (err error) {
	var handles *gcsblob.CopyObjectHandles
	if err := probeCopy(ctx, b, dst, srcs[0], func(as func(any) bool) { as(&handles) }); err != nil {
		return err
	}
	if handles == nil {
		return errors.New("gcsblob did not show its copy request")
	}
	prefix, err := keyPrefix(handles.Dst.ObjectName(), dst)
	if err != nil {
		return err
	}
	bucket := client.Bucket(handles.Dst.BucketName())
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = prefix + s
	}
	temps := newTempNames(prefix + dst)
	var made []string // intermediates
	defer func() {
		// After a success each was the source of a compose that deleted it.
		if err != nil && len(made) > 0 {
			deleteIntermediates(ctx, bucket, made, limit, calls)
		}
	}()

	var composes atomic.Int64
	compose := func(ctx context.Context, target *storage.ObjectHandle, names []string, intermediates bool) (*storage.ObjectAttrs, error) {
		objs := make([]*storage.ObjectHandle, len(names))
		for i, name := range names {
			objs[i] = bucket.Object(name)
		}
		c := target.ComposerFrom(objs...)
		c.ContentType = contentType(target.ObjectName())
		c.DeleteSourceObjects = intermediates
		calls.Add(1)
		composes.Add(1)
		count(ctx, job.RequestCounts{Put: 1}) // a compose is a class A operation, made by the provider's client
		attrs, err := c.Run(ctx)
		if err != nil {
			return nil, fmt.Errorf("compose %s from %d objects, %s to %s: %w", target.ObjectName(), len(names), names[0], names[len(names)-1], err)
		}
		return attrs, nil
	}

	for level := 0; len(names) > gcsMaxComposeSources; level++ {
		groups := (len(names) + gcsMaxComposeSources - 1) / gcsMaxComposeSources
		next := make([]string, groups)
		for i := range next {
			next[i] = temps.name(len(made) + i)
		}
		made = append(made, next...)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(limit)
		for i := range next {
			// Balanced groups: 33 sources are 17 + 16, not 32 + 1.
			group := names[i*len(names)/groups : (i+1)*len(names)/groups]
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err // another failed: start no more
				}
				// Not cancelled when another fails: a compose cancelled in
				// flight can still finish on the server, after the cleanup.
				_, err := compose(ctx, bucket.Object(next[i]), group, level > 0)
				return err
			})
		}
		err := g.Wait()
		stats.Composes = int(composes.Load())
		stats.Intermediates = len(made)
		if err != nil {
			return err
		}
		names = next
	}
	attrs, err := compose(ctx, bucket.Object(prefix+dst).If(storage.Conditions{DoesNotExist: true}), names, len(made) > 0)
	stats.Composes = int(composes.Load())
	if err != nil {
		var apiErr *googleapi.Error
		if errors.As(err, &apiErr) && apiErr.Code == http.StatusPreconditionFailed {
			return ErrExists
		}
		return err
	}
	stats.Bytes = attrs.Size
	stats.BytesCopiedServerSide = attrs.Size
	return nil
}

// deleteIntermediates removes Concat's intermediate objects, those a
// compose has not deleted already; with a context of its own, so a
// cancelled Concat still cleans up.
func deleteIntermediates(ctx context.Context, bucket *storage.BucketHandle, names []string, limit int, calls *atomic.Int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(limit)
	for _, name := range names {
		g.Go(func() error {
			calls.Add(1)
			_ = bucket.Object(name).Delete(ctx) // gone already (deleted as a source) is fine
			return nil
		})
	}
	g.Wait()
}
