package stitch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// part is one chunk's object in a stream of them: the segment or audio
// its marker names, with the size and SHA-256 the marker promises; or,
// with no key, that many bytes of silence.
type part struct {
	chunk  int
	key    string
	size   int64
	sha256 string // hex; "" if the marker has none
}

// objects reads parts one after another as one stream, opening each
// object when the one before ends, and checks each against its marker as
// it goes: a part that is not what its worker uploaded fails the read, so
// the command fed from it fails and nothing is published.
type objects struct {
	ctx    context.Context
	cancel context.CancelFunc
	store  opener
	parts  []part

	next int           // the next part to open
	cur  io.Reader     // the part being read (nil between parts)
	obj  io.ReadCloser // its object, if stored
	sum  hash.Hash
	got  int64 // bytes of the current part read
	n    int64 // bytes of stored objects read

	damaged *joberr.Error // why a part was refused
}

// opener opens the stored segments and audio parts markers name
// (jobstore.Store does).
type opener interface {
	OpenSegment(ctx context.Context, key string) (io.ReadCloser, error)
}

func newObjects(ctx context.Context, store opener, parts []part) *objects {
	ctx, cancel := context.WithCancel(ctx)
	return &objects{ctx: ctx, cancel: cancel, store: store, parts: parts, sum: sha256.New()}
}

func (o *objects) Read(p []byte) (int, error) {
	for {
		if o.cur == nil {
			if o.next == len(o.parts) {
				return 0, io.EOF
			}
			if err := o.open(o.parts[o.next]); err != nil {
				return 0, err
			}
		}
		n, err := o.cur.Read(p)
		o.got += int64(n)
		o.sum.Write(p[:n])
		if o.obj != nil {
			o.n += int64(n)
		}
		if errors.Is(err, io.EOF) {
			if err := o.finish(o.parts[o.next]); err != nil {
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (o *objects) open(p part) error {
	o.got = 0
	o.sum.Reset()
	if p.key == "" {
		o.cur = io.LimitReader(zeros{}, p.size)
		return nil
	}
	r, err := o.store.OpenSegment(o.ctx, p.key)
	if err != nil {
		return fmt.Errorf("read %s: %w", p.key, err)
	}
	o.cur, o.obj = r, r
	return nil
}

// finish checks the part just read to its end, and moves to the next.
func (o *objects) finish(p part) error {
	if o.obj != nil {
		o.obj.Close()
	}
	o.cur, o.obj = nil, nil
	o.next++
	switch got := hex.EncodeToString(o.sum.Sum(nil)); {
	case o.got != p.size:
		o.damaged = joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "%s is %d bytes; its marker promises %d", p.key, o.got, p.size).WithChunk(p.chunk)
	case p.key != "" && p.sha256 != "" && got != p.sha256:
		o.damaged = joberr.Errorf(joberr.Permanent, joberr.CodeFrameMismatch, "%s does not have the SHA-256 its marker promises: it changed after its worker checked it", p.key).WithChunk(p.chunk)
	default:
		return nil
	}
	return o.damaged
}

// Close ends a Read blocked on a stored object (the command fed from it
// exited); safe beside a Read.
func (o *objects) Close() error {
	o.cancel()
	return nil
}

// release closes the object being read, once nothing reads any more.
func (o *objects) release() {
	o.cancel()
	if o.obj != nil {
		o.obj.Close()
	}
}

// complete reports whether every part was read to its end and matched.
func (o *objects) complete() error {
	if o.damaged != nil {
		return o.damaged
	}
	if o.cur != nil || o.next < len(o.parts) {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "ffmpeg stopped reading before the end of chunk %d's part; nothing was published", o.parts[min(o.next, len(o.parts)-1)].chunk)
	}
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
