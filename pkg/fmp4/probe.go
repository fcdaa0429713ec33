package fmp4

import (
	"fmt"
	"io"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Summary is what Inspect tells of an MP4 or QuickTime file.
type Summary struct {
	// Audio is the sample entry type of the first audio track (mp4a, Opus,
	// sowt, twos, lpcm, ipcm, ...), or "" if there is none.
	Audio string
	// Fragmented is set when the moov announces fragments (an mvex).
	Fragmented bool
}

// Inspect reads box headers and the moov only, seeking over the media, so
// it costs a few reads whatever the file's size.
func Inspect(r io.ReadSeeker) (Summary, error) {
	for pos := int64(0); ; {
		h, err := mp4.DecodeHeader(r)
		if err == io.EOF {
			return Summary{}, fmt.Errorf("fmp4: no moov box: not an MP4 or QuickTime file")
		}
		if err != nil {
			return Summary{}, fmt.Errorf("fmp4: box header at byte %d: %w", pos, err)
		}
		if h.Size < uint64(h.Hdrlen) {
			return Summary{}, fmt.Errorf("fmp4: %s box at byte %d: size %d is smaller than its header", h.Name, pos, h.Size)
		}
		if h.Name != "moov" {
			pos += int64(h.Size)
			if _, err := r.Seek(pos, io.SeekStart); err != nil {
				return Summary{}, fmt.Errorf("fmp4: skip %s box at byte %d: %w", h.Name, pos-int64(h.Size), err)
			}
			continue
		}
		if h.Size > maxDecodedBox {
			return Summary{}, fmt.Errorf("fmp4: moov box of %d bytes, more than the %d read here", h.Size, maxDecodedBox)
		}
		data := make([]byte, h.Size)
		if _, err := r.Seek(pos, io.SeekStart); err != nil {
			return Summary{}, fmt.Errorf("fmp4: moov: %w", err)
		}
		if _, err := io.ReadFull(r, data); err != nil {
			return Summary{}, fmt.Errorf("fmp4: moov: %w", err)
		}
		moov := &rawBox{typ: "moov", hdrLen: h.Hdrlen, data: data}
		audio, err := audioCodec(moov)
		return Summary{Audio: audio, Fragmented: moov.child("mvex") != nil}, err
	}
}

func audioCodec(moov *rawBox) (string, error) {
	if err := moov.open(); err != nil {
		return "", fmt.Errorf("fmp4: %w", err)
	}
	for _, trak := range moov.kids {
		if trak.typ != "trak" {
			continue
		}
		hdlr, err := descend(trak, "mdia", "hdlr")
		if err != nil {
			return "", fmt.Errorf("fmp4: %w", err)
		}
		// hdlr: version+flags, pre_defined, then the handler type.
		if body := hdlr.data[hdlr.hdrLen:]; len(body) < 12 || string(body[8:12]) != "soun" {
			continue
		}
		stsd, err := descend(trak, "mdia", "minf", "stbl", "stsd")
		if err != nil {
			return "", fmt.Errorf("fmp4: audio track: %w", err)
		}
		// stsd: version+flags, entry count, then entries (size, type, ...).
		body := stsd.data[stsd.hdrLen:]
		if len(body) < 16 {
			return "", fmt.Errorf("fmp4: audio track: stsd has no sample entry")
		}
		return string(body[12:16]), nil
	}
	return "", nil
}
