package fmp4

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/Eyevinn/mp4ff/avc"
)

// Compatible reports whether other's fragments can be decoded with first's
// init; if not, the error names the first difference, first's value before
// other's ("track 1: width 1280 vs 640").
func Compatible(first, other *Init) error {
	if len(first.Tracks) != len(other.Tracks) {
		return fmt.Errorf("fmp4: %d tracks vs %d", len(first.Tracks), len(other.Tracks))
	}
	for i := range first.Tracks {
		if err := compatibleTracks(&first.Tracks[i], &other.Tracks[i]); err != nil {
			return fmt.Errorf("fmp4: track %d: %w", i+1, err)
		}
	}
	return nil
}

func compatibleTracks(a, b *Track) error {
	switch {
	case a.ID != b.ID:
		return fmt.Errorf("track ID %d vs %d", a.ID, b.ID)
	case a.Handler != b.Handler:
		return fmt.Errorf("handler %q vs %q", a.Handler, b.Handler)
	case a.Codec != b.Codec:
		return fmt.Errorf("codec %q vs %q", a.Codec, b.Codec)
	case a.Width != b.Width:
		return fmt.Errorf("width %d vs %d", a.Width, b.Width)
	case a.Height != b.Height:
		return fmt.Errorf("height %d vs %d", a.Height, b.Height)
	case a.Timescale != b.Timescale:
		return fmt.Errorf("timescale %d vs %d", a.Timescale, b.Timescale)
	case a.EditMediaTime != b.EditMediaTime:
		return fmt.Errorf("edit list media time %d vs %d", a.EditMediaTime, b.EditMediaTime)
	case a.Defaults != b.Defaults:
		return fmt.Errorf("trex sample defaults %+v vs %+v", a.Defaults, b.Defaults)
	}
	if ta, tb := configTypes(a.Config), configTypes(b.Config); ta != tb {
		return fmt.Errorf("%s boxes [%s] vs [%s]", a.Codec, ta, tb)
	}
	for i := range a.Config {
		if x, y := a.Config[i].Data, b.Config[i].Data; !bytes.Equal(x, y) {
			return configDifference(a.Config[i].Type, x, y)
		}
	}
	return nil
}

func configTypes(boxes []ConfigBox) string {
	types := make([]string, len(boxes))
	for i, b := range boxes {
		types[i] = b.Type
	}
	return strings.Join(types, " ")
}

// configDifference names how two encodings of a config box differ: for an
// avcC, which profile, level or parameter set; else where the bytes part.
func configDifference(typ string, x, y []byte) error {
	if typ == "avcC" && len(x) > 8 && len(y) > 8 {
		a, errA := decodeAvcC(x)
		b, errB := decodeAvcC(y)
		if errA == nil && errB == nil {
			switch {
			case a.AVCProfileIndication != b.AVCProfileIndication:
				return fmt.Errorf("avcC profile %d vs %d", a.AVCProfileIndication, b.AVCProfileIndication)
			case a.AVCLevelIndication != b.AVCLevelIndication:
				return fmt.Errorf("avcC level %d vs %d", a.AVCLevelIndication, b.AVCLevelIndication)
			}
			if err := naluDifference("SPS", a.SPSnalus, b.SPSnalus); err != nil {
				return err
			}
			if err := naluDifference("PPS", a.PPSnalus, b.PPSnalus); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%s differs: %s", typ, firstDifference(x, y))
}

// decodeAvcC decodes an avcC box's record, which mp4ff reads unchecked.
func decodeAvcC(box []byte) (rec avc.DecConfRec, err error) {
	defer recoverInto(&err, "decode")
	return avc.DecodeAVCDecConfRec(box[8:])
}

func naluDifference(kind string, a, b [][]byte) error {
	if len(a) != len(b) {
		return fmt.Errorf("avcC has %d %s vs %d", len(a), kind, len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return fmt.Errorf("avcC %s %d differs: %s vs %s", kind, i+1, shortHex(a[i]), shortHex(b[i]))
		}
	}
	return nil
}

// shortHex is b in hex, cut after 32 bytes.
func shortHex(b []byte) string {
	if len(b) > 32 {
		return hex.EncodeToString(b[:32]) + "…"
	}
	return hex.EncodeToString(b)
}

// firstDifference says where two encodings part: "byte 12 of 53: 0x1e vs
// 0x28".
func firstDifference(x, y []byte) string {
	i := 0
	for i < len(x) && i < len(y) && x[i] == y[i] {
		i++
	}
	at := func(b []byte) string {
		if i < len(b) {
			return fmt.Sprintf("%#02x", b[i])
		}
		return "end"
	}
	return fmt.Sprintf("byte %d of %d vs %d (box header included): %s vs %s", i, len(x), len(y), at(x), at(y))
}

// Joinable is Compatible for inits as bytes (Init.Bytes), as a chunk's
// completion marker keeps them: equal inits are joinable without
// decoding either.
func Joinable(first, other []byte) error {
	if bytes.Equal(first, other) {
		return nil
	}
	a, err := ReadInit(bytes.NewReader(first))
	if err != nil {
		return fmt.Errorf("the first init: %w", err)
	}
	b, err := ReadInit(bytes.NewReader(other))
	if err != nil {
		return err
	}
	return Compatible(a, b)
}
