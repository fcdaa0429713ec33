package fmp4

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/Eyevinn/mp4ff/mp4"
)

// maxDecodedBox bounds the boxes read into memory (ftyp, moov, moof): a
// fragmented file's moov and a GOP's moof are kilobytes; only mdat, which
// is streamed, is large.
const maxDecodedBox = 64 << 20

// boxReader reads a file's top-level boxes in order, one at a time, and
// knows the offset of each for messages.
type boxReader struct {
	r   io.Reader
	pos uint64 // offset of the next box header
}

// box is a top-level box header and where it starts.
type box struct {
	mp4.BoxHeader
	start uint64
}

func (b box) String() string { return fmt.Sprintf("%s box at byte %d", b.Name, b.start) }

// next reads the next box header; io.EOF when the file ends between boxes.
func (br *boxReader) next() (box, error) {
	start := br.pos
	h, err := mp4.DecodeHeader(br.r)
	switch {
	case errors.Is(err, io.EOF):
		return box{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return box{}, fmt.Errorf("truncated box header at byte %d", start)
	case err != nil:
		return box{}, fmt.Errorf("box header at byte %d: %w", start, err)
	}
	if h.Size < uint64(h.Hdrlen) {
		return box{}, fmt.Errorf("%s box at byte %d: size %d is smaller than its header", h.Name, start, h.Size)
	}
	br.pos += uint64(h.Hdrlen)
	return box{BoxHeader: h, start: start}, nil
}

// read reads the whole of b, header included, into memory.
func (br *boxReader) read(b box) ([]byte, error) {
	if b.Size > maxDecodedBox {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a %s may have here", b, b.Size, maxDecodedBox, b.Name)
	}
	var raw bytes.Buffer
	raw.Grow(int(b.Size))
	if err := writeHeader(&raw, b); err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	if err := br.copyBody(&raw, b); err != nil {
		return nil, err
	}
	return raw.Bytes(), nil
}

// skip reads past the body of b.
func (br *boxReader) skip(b box) error { return br.copyBody(io.Discard, b) }

// copyBody copies the body of b to w, streaming: an mdat may be gigabytes.
func (br *boxReader) copyBody(w io.Writer, b box) error {
	n := int64(b.Size - uint64(b.Hdrlen))
	copied, err := io.CopyN(w, br.r, n)
	br.pos += uint64(copied)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: truncated: %d of %d body bytes", b, copied, n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", b, err)
	}
	return nil
}

// writeHeader writes b's header as it was read (large size or not).
func writeHeader(w io.Writer, b box) error {
	return mp4.EncodeHeaderWithSize(b.Name, b.Size, b.Hdrlen > 8, w)
}

// decode decodes a whole box with dec, one of mp4ff's box decoders.
func decode(raw []byte, dec mp4.BoxDecoder) (b mp4.Box, err error) {
	defer recoverInto(&err, "decode")
	r := bytes.NewReader(raw)
	h, err := mp4.DecodeHeader(r)
	if err != nil {
		return nil, err
	}
	b, err = dec(h, 0, r)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", h.Name, err)
	}
	return b, nil
}

// encode returns the bytes of a decoded box.
func encode(b mp4.Box) (data []byte, err error) {
	defer recoverInto(&err, "encode")
	var buf bytes.Buffer
	buf.Grow(int(b.Size()))
	if err := b.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", b.Type(), err)
	}
	return buf.Bytes(), nil
}

// recoverInto turns a panic of mp4ff into an error: some of its decoders
// index their input unchecked (avcC), and trun's encoder panics on a zero
// data offset, and a chunk is input we did not write.
func recoverInto(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("mp4ff failed to %s a box: %v", what, r)
	}
}
