package fmp4

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// rawBox is a box kept as the bytes it was read as. Place changes a few
// boxes of a moov and leaves the rest, the sample entries above all, as
// the encoder wrote them: mp4ff does not write every box back as it read
// it (v0.47.0 zeroes the avcC tail of x264's lossless High 4:4:4 profile).
type rawBox struct {
	typ    string
	hdrLen int    // 8, or 16 with a large size
	data   []byte // the whole box; stale once kids is set
	// kids are the boxes of an opened container; nil if not opened.
	kids []*rawBox
}

// splitBoxes cuts data into the boxes it is made of.
func splitBoxes(data []byte) ([]*rawBox, error) {
	var boxes []*rawBox
	for pos := 0; pos < len(data); {
		h, err := mp4.DecodeHeader(bytes.NewReader(data[pos:]))
		if err != nil {
			return nil, fmt.Errorf("box at byte %d of %d: %w", pos, len(data), err)
		}
		if h.Size < uint64(h.Hdrlen) || h.Size > uint64(len(data)-pos) {
			return nil, fmt.Errorf("%s box at byte %d: size %d does not fit the %d bytes left", h.Name, pos, h.Size, len(data)-pos)
		}
		end := pos + int(h.Size)
		boxes = append(boxes, &rawBox{typ: h.Name, hdrLen: h.Hdrlen, data: data[pos:end]})
		pos = end
	}
	return boxes, nil
}

// open splits a plain container (one with no fields before its children,
// such as moov, trak, mdia, mvex) into its children.
func (b *rawBox) open() error {
	if b.kids != nil {
		return nil
	}
	kids, err := splitBoxes(b.data[b.hdrLen:])
	if err != nil {
		return fmt.Errorf("in %s: %w", b.typ, err)
	}
	if kids == nil {
		kids = []*rawBox{}
	}
	b.kids = kids
	return nil
}

// child is the first child of type typ; nil if none.
func (b *rawBox) child(typ string) *rawBox {
	for _, k := range b.kids {
		if k.typ == typ {
			return k
		}
	}
	return nil
}

// drop removes the children of type typ.
func (b *rawBox) drop(typ string) {
	kept := b.kids[:0]
	for _, k := range b.kids {
		if k.typ != typ {
			kept = append(kept, k)
		}
	}
	b.kids = kept
}

// insertAfter puts box n after the first child of type typ, or first.
func (b *rawBox) insertAfter(typ string, n *rawBox) {
	at := 0
	for i, k := range b.kids {
		if k.typ == typ {
			at = i + 1
			break
		}
	}
	b.kids = append(b.kids[:at], append([]*rawBox{n}, b.kids[at:]...)...)
}

// bytes writes the box, with a new size if it was opened.
func (b *rawBox) bytes() []byte {
	if b.kids == nil {
		return b.data
	}
	var body bytes.Buffer
	for _, k := range b.kids {
		body.Write(k.bytes())
	}
	var out bytes.Buffer
	// Boxes of a moov: under 4 GiB, so the size check cannot fail.
	_ = mp4.EncodeHeaderWithSize(b.typ, uint64(8+body.Len()), false, &out)
	out.Write(body.Bytes())
	return out.Bytes()
}

// decodeExact decodes a box and checks that mp4ff writes it back as it
// was, so that changing a field of it changes only that field.
func decodeExact(raw []byte, dec mp4.BoxDecoder) (mp4.Box, error) {
	b, err := decode(raw, dec)
	if err != nil {
		return nil, err
	}
	again, err := encode(b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%s box of %d bytes is not written back as read by mp4ff (%d bytes, %s): refusing to rewrite it",
			b.Type(), len(raw), len(again), firstDifference(raw, again))
	}
	return b, nil
}
