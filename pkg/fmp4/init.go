package fmp4

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Init is an init segment (ftyp+moov) and the description of its tracks
// that Compatible compares: a joined file has one init, so every chunk's
// fragments must be decodable with the first chunk's.
type Init struct {
	Tracks []Track
	data   []byte // ftyp+moov
}

// Track is what a fragment's samples are decoded and presented with.
type Track struct {
	ID        uint32
	Handler   string // hdlr handler type: "vide", "soun", ...
	Codec     string // sample entry type: "avc1", "hvc1", "mp4a", ...
	Width     uint16 // of the visual sample entry; 0 for other tracks
	Height    uint16
	Timescale uint32 // mdhd: ticks per second of the track's times
	// EditMediaTime is the media time the track's edit list starts at, in
	// ticks (Place sets it to the placement's delay); 0 without one.
	EditMediaTime int64
	// Defaults are the trex values of what a fragment leaves out.
	Defaults SampleDefaults
	// Config is the sample entry's child boxes (avcC with the SPS and PPS,
	// pasp, colr, ...) in order, as written, but btrt: its bitrates are
	// the chunk's own. A sample entry mp4ff does not know is one box here.
	Config []ConfigBox
}

// SampleDefaults are a track's trex defaults.
type SampleDefaults struct {
	DescriptionIndex, Duration, Size, Flags uint32
}

// ConfigBox is one child box of a sample entry, header included.
type ConfigBox struct {
	Type string
	Data []byte
}

// Bytes is the init segment: ftyp+moov.
func (in *Init) Bytes() []byte { return in.data }

// ReadInit reads an init segment (ftyp+moov) from r: a stored init, or the
// head of a fragmented file, in which case r is left after the moov.
func ReadInit(r io.Reader) (*Init, error) {
	br := &boxReader{r: r}
	var ftyp []byte
	for {
		b, err := br.next()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("fmp4: read init: no moov box")
		}
		if err != nil {
			return nil, fmt.Errorf("fmp4: read init: %w", err)
		}
		switch b.Name {
		case "ftyp", "moov":
			raw, err := br.read(b)
			if err != nil {
				return nil, fmt.Errorf("fmp4: read init: %w", err)
			}
			if b.Name == "ftyp" {
				ftyp = raw
				continue
			}
			in, err := newInit(ftyp, raw)
			if err != nil {
				return nil, fmt.Errorf("fmp4: read init: %w", err)
			}
			return in, nil
		case "free", "skip":
			if err := br.skip(b); err != nil {
				return nil, fmt.Errorf("fmp4: read init: %w", err)
			}
		default:
			return nil, fmt.Errorf("fmp4: read init: %s before the moov; an init is ftyp+moov", b)
		}
	}
}

// newInit describes the tracks of moov and keeps ftyp+moov as they are.
func newInit(ftyp, moov []byte) (*Init, error) {
	if ftyp == nil {
		return nil, errors.New("no ftyp box before the moov")
	}
	if err := checkBoxCounts(moov); err != nil {
		return nil, err
	}
	decoded, err := decode(moov, mp4.DecodeMoov)
	if err != nil {
		return nil, err
	}
	entries, err := sampleEntries(moov)
	if err != nil {
		return nil, err
	}
	tracks, err := describeTracks(decoded.(*mp4.MoovBox), entries)
	if err != nil {
		return nil, err
	}
	return &Init{Tracks: tracks, data: slices.Concat(ftyp, moov)}, nil
}

func describeTracks(moov *mp4.MoovBox, entries [][]*rawBox) ([]Track, error) {
	if len(moov.Traks) == 0 {
		return nil, errors.New("moov has no track")
	}
	if len(entries) != len(moov.Traks) {
		return nil, fmt.Errorf("moov has %d traks but %d sample descriptions", len(moov.Traks), len(entries))
	}
	tracks := make([]Track, 0, len(moov.Traks))
	for i, trak := range moov.Traks {
		t, err := describeTrack(trak, entries[i])
		if err != nil {
			return nil, fmt.Errorf("track %d of %d: %w", i+1, len(moov.Traks), err)
		}
		if moov.Mvex != nil {
			for _, trex := range moov.Mvex.Trexs {
				if trex.TrackID == t.ID {
					t.Defaults = SampleDefaults{trex.DefaultSampleDescriptionIndex, trex.DefaultSampleDuration, trex.DefaultSampleSize, trex.DefaultSampleFlags}
				}
			}
		}
		tracks = append(tracks, t)
	}
	return tracks, nil
}

// describeTrack is what a trak says of its track: its ID, handler,
// timescale, edit and its single sample description.
func describeTrack(trak *mp4.TrakBox, entries []*rawBox) (Track, error) {
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
		trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return Track{}, errors.New("trak lacks one of tkhd, mdhd, hdlr, stsd")
	}
	t := Track{
		ID:        trak.Tkhd.TrackID,
		Handler:   trak.Mdia.Hdlr.HandlerType,
		Timescale: trak.Mdia.Mdhd.Timescale,
	}
	var err error
	if t.EditMediaTime, err = editMediaTime(t.ID, trak.Edts); err != nil {
		return Track{}, err
	}
	if err := describeSampleEntry(&t, trak.Mdia.Minf.Stbl.Stsd, entries); err != nil {
		return Track{}, err
	}
	return t, nil
}

// editMediaTime is where the track's single edit starts in its media; 0
// without an edit list. More than one edit is refused.
func editMediaTime(trackID uint32, edts *mp4.EdtsBox) (int64, error) {
	if edts == nil {
		return 0, nil
	}
	var edits []mp4.ElstEntry
	for _, elst := range edts.Elst {
		edits = append(edits, elst.Entries...)
	}
	if len(edits) > 1 {
		return 0, fmt.Errorf("track ID %d has an edit list of %d edits; one is supported", trackID, len(edits))
	}
	if len(edits) == 1 {
		return edits[0].MediaTime, nil
	}
	return 0, nil
}

// describeSampleEntry sets t's codec, its configuration boxes as written
// and, for video, its size, from its one sample description (entries is
// that description as written).
func describeSampleEntry(t *Track, stsd *mp4.StsdBox, entries []*rawBox) error {
	if len(stsd.Children) != 1 || len(entries) != 1 {
		return fmt.Errorf("track ID %d has %d sample descriptions; one is expected", t.ID, len(stsd.Children))
	}
	entry := stsd.Children[0]
	t.Codec = entry.Type()
	t.Config = []ConfigBox{{Type: entry.Type(), Data: entries[0].data}}
	if e, ok := entry.(*mp4.VisualSampleEntryBox); ok {
		t.Width, t.Height = e.Width, e.Height
		if config, ok := visualConfig(entries[0], e); ok {
			t.Config = config
		}
	}
	return nil
}

// visualEntryFields is the size of a VisualSampleEntry's fields before
// its child boxes (ISO/IEC 14496-12 12.1.3): reserved, data reference
// index, pre-defined and reserved, width, height, resolutions, reserved,
// frame count, compressor name, depth, pre-defined.
const visualEntryFields = 6 + 2 + 16 + 2 + 2 + 4 + 4 + 4 + 2 + 32 + 2 + 2

// visualConfig returns the child boxes of a visual sample entry as
// written, but btrt; false if they are not where mp4ff found them.
func visualConfig(raw *rawBox, decoded *mp4.VisualSampleEntryBox) ([]ConfigBox, bool) {
	if len(raw.data) < raw.hdrLen+visualEntryFields {
		return nil, false
	}
	kids, err := splitBoxes(raw.data[raw.hdrLen+visualEntryFields:])
	if err != nil || len(kids) != len(decoded.Children) {
		return nil, false
	}
	var config []ConfigBox
	for i, k := range kids {
		if k.typ != decoded.Children[i].Type() {
			return nil, false
		}
		if k.typ != "btrt" {
			config = append(config, ConfigBox{Type: k.typ, Data: k.data})
		}
	}
	return config, true
}

// sampleEntries returns, for every trak of a moov in order, its sample
// entries as written.
func sampleEntries(moov []byte) ([][]*rawBox, error) {
	root, err := openMoov(moov)
	if err != nil {
		return nil, err
	}
	var all [][]*rawBox
	for _, trak := range root.kids {
		if trak.typ != "trak" {
			continue
		}
		stsd, err := descend(trak, "mdia", "minf", "stbl", "stsd")
		if err != nil {
			return nil, err
		}
		// stsd: version and flags, entry count, then the entries.
		if len(stsd.data) < stsd.hdrLen+8 {
			return nil, fmt.Errorf("stsd box of %d bytes is too short", len(stsd.data))
		}
		entries, err := splitBoxes(stsd.data[stsd.hdrLen+8:])
		if err != nil {
			return nil, fmt.Errorf("in stsd: %w", err)
		}
		all = append(all, entries)
	}
	return all, nil
}

// openMoov opens a moov's box and its traks.
func openMoov(moov []byte) (*rawBox, error) {
	boxes, err := splitBoxes(moov)
	if err != nil {
		return nil, err
	}
	if len(boxes) != 1 || boxes[0].typ != "moov" {
		return nil, errors.New("not a single moov box")
	}
	root := boxes[0]
	return root, root.open()
}

// descend opens the containers on a path under b and returns the last.
func descend(b *rawBox, path ...string) (*rawBox, error) {
	for _, typ := range path {
		if err := b.open(); err != nil {
			return nil, err
		}
		next := b.child(typ)
		if next == nil {
			return nil, fmt.Errorf("%s box has no %s", b.typ, typ)
		}
		b = next
	}
	return b, nil
}

// normalizeMoov makes a chunk's moov the init of a joined file: no
// duration, which would be the chunk's (the fragments say how long the
// joined file is), and every track's edit list replaced by one that starts
// presenting at editMediaTime ticks (none if 0), the delay Place gives
// every chunk.
func normalizeMoov(moov []byte, editMediaTime int64) ([]byte, error) {
	root, err := openMoov(moov)
	if err != nil {
		return nil, err
	}
	if err := zeroDuration(root.child("mvhd"), mp4.DecodeMvhd, func(b mp4.Box) { b.(*mp4.MvhdBox).Duration = 0 }); err != nil {
		return nil, err
	}
	edts, err := editList(editMediaTime)
	if err != nil {
		return nil, err
	}
	for _, trak := range root.kids {
		if trak.typ != "trak" {
			continue
		}
		if err := trak.open(); err != nil {
			return nil, err
		}
		if err := zeroDuration(trak.child("tkhd"), mp4.DecodeTkhd, func(b mp4.Box) { b.(*mp4.TkhdBox).Duration = 0 }); err != nil {
			return nil, err
		}
		trak.drop("edts")
		if edts != nil {
			trak.insertAfter("tkhd", edts)
		}
		mdhd, err := descend(trak, "mdia", "mdhd")
		if err != nil {
			return nil, err
		}
		if err := zeroDuration(mdhd, mp4.DecodeMdhd, func(b mp4.Box) { b.(*mp4.MdhdBox).Duration = 0 }); err != nil {
			return nil, err
		}
	}
	if mvex := root.child("mvex"); mvex != nil {
		if err := mvex.open(); err != nil {
			return nil, err
		}
		mvex.drop("mehd") // the fragment duration: the chunk's
	}
	return root.bytes(), nil
}

// zeroDuration rewrites box b (if there is one) with set applied to it.
func zeroDuration(b *rawBox, dec mp4.BoxDecoder, set func(mp4.Box)) error {
	if b == nil {
		return nil
	}
	decoded, err := decodeExact(b.data, dec)
	if err != nil {
		return err
	}
	set(decoded)
	b.data, err = encode(decoded)
	return err
}

// editList is an edts box presenting a track from mediaTime on, to its
// end (a segment duration of 0, as ffmpeg writes for fragmented files,
// whose duration the init cannot know); nil for mediaTime 0.
func editList(mediaTime int64) (*rawBox, error) {
	if mediaTime == 0 {
		return nil, nil
	}
	elst := &mp4.ElstBox{Entries: []mp4.ElstEntry{{MediaTime: mediaTime, MediaRateInteger: 1}}}
	if mediaTime > 1<<31-1 {
		elst.Version = 1
	}
	edts := &mp4.EdtsBox{}
	edts.AddChild(elst)
	data, err := encode(edts)
	if err != nil {
		return nil, err
	}
	return &rawBox{typ: "edts", hdrLen: 8, data: data}, nil
}
