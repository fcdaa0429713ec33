package fmp4

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/helios-project/infrastructure/pkg/framerate"
)

// DefaultDelay is a Placement.Delay for chunks of x264 or x265 with their
// default B-frames (pyramid B-frames present each frame at most two
// frames after it is decoded) or of any encoder without B-frames.
const DefaultDelay = 2

// Placement is where a chunk goes on the job's timeline.
type Placement struct {
	// Start is the chunk's first frame on the job's timeline.
	Start int
	// Rate is the job's frame rate; every sample must last one frame of it.
	Rate framerate.Rate
	// Sequence is the mfhd sequence number of the chunk's first fragment;
	// the next ones follow. Sequence numbers must rise across the joined
	// file: the first chunk's count plus one for the second, and so on, or
	// chunk index × a stride larger than any chunk's fragment count, which
	// needs no other chunk's count (see Placed.Fragments).
	Sequence uint32
	// Delay, in frames, is how long after its decode time each chunk's
	// first frame is presented in the joined file; the init's edit list
	// takes it back. It must be the same for every chunk of a job, and at
	// least the reordering delay of every chunk (refused if not): an edit
	// list is per file, and the delay an encoder adds varies from chunk to
	// chunk (x264 adds none to a chunk of one or two frames).
	Delay uint32
	// WriteInit writes the placed init (Placed.Init) before the
	// fragments: the first chunk's segment then is the head of the joined
	// file, and a join is the segments, in order, byte for byte.
	WriteInit bool
}

// Placed describes a chunk Place wrote.
type Placed struct {
	// Init is the chunk's init segment made the init of a joined file: no
	// duration, and an edit list of the placement's delay. A joined file
	// takes the first chunk's; the others must be Compatible with it.
	Init *Init
	// Samples is the number of samples (frames), from the trun counts.
	Samples int
	// Fragments is the number of moof+mdat pairs written; their sequence
	// numbers are Sequence to Sequence+Fragments-1.
	Fragments int
	// Timescale is the track's ticks per second; SampleDuration is one
	// frame in those ticks.
	Timescale      uint32
	SampleDuration uint32
	// FirstDecodeTime is the tfdt written in the first fragment:
	// Start × SampleDuration. After the init's edit list, the chunk's
	// first frame is presented at that time too.
	FirstDecodeTime uint64
}

// Place reads a fragmented chunk (FragmentArgs' output) from src and
// writes its fragments to dst, placed at p: decode times (tfdt) shifted so
// that the chunk's start at frame p.Start, composition offsets rewritten so
// that its first frame is presented p.Delay frames after that (the init's
// edit list takes the delay back), mfhd renumbered from p.Sequence. The
// init is returned, not written; sidx, mfra, styp, free and skip boxes are
// dropped, being about the chunk alone.
//
// One moof at a time is held in memory; mdat bodies are copied as they are
// read. On error, what was written to dst is unusable.
//
// The chunk must hold a single video track whose samples each last one
// frame at p.Rate in whole ticks, whose frames are each presented once, one
// after another, and whose sample data is addressed from each moof
// (default-base-is-moof), as FragmentArgs makes it.
func Place(dst io.Writer, src io.Reader, p Placement) (*Placed, error) {
	if p.Start < 0 {
		return nil, fmt.Errorf("fmp4: place: start frame %d is negative", p.Start)
	}
	pl := &placer{dst: dst, br: &boxReader{r: src}, p: p, seq: p.Sequence}
	if err := pl.run(); err != nil {
		return nil, fmt.Errorf("fmp4: place chunk at frame %d: %w", p.Start, err)
	}
	return &pl.out, nil
}

// placer is the state of one Place call.
type placer struct {
	dst io.Writer
	br  *boxReader
	p   Placement
	out Placed

	ftyp  []byte
	track Track
	ticks uint64 // of a frame
	seq   uint32 // the next fragment's sequence number

	// Decode times in the chunk's own ticks, as read.
	firstDecode uint64 // tfdt of the first fragment
	nextDecode  uint64 // where the next fragment must start: no gap, no overlap
	// ctoShift is added to every composition offset: the placement's delay
	// less the chunk's own (its earliest presentation after its first
	// decode time).
	ctoShift int64
	// shown has bit k set once a sample is presented on the chunk's frame k.
	shown    frameSet
	moofSeen bool // the last box was a moof, so an mdat may follow
}

// run places the chunk's boxes, in order, and checks the whole at its end.
func (pl *placer) run() error {
	for {
		b, err := pl.br.next()
		if errors.Is(err, io.EOF) {
			return pl.finish()
		}
		if err != nil {
			return err
		}
		if err := pl.placeBox(b); err != nil {
			return err
		}
	}
}

// placeBox handles one top-level box of the chunk: its ftyp and moov make
// the init, each moof is placed and its mdat copied after it, the boxes
// about the chunk alone are dropped, and anything else is refused.
func (pl *placer) placeBox(b box) error {
	afterMoof := pl.moofSeen
	pl.moofSeen = false
	switch b.Name {
	case "ftyp":
		return pl.readFtyp(b)
	case "moov":
		return pl.readMoov(b)
	case "moof":
		if err := pl.placeMoof(b); err != nil {
			return err
		}
		pl.moofSeen = true
		return nil
	case "mdat":
		return pl.copyMdat(b, afterMoof)
	case "sidx", "mfra", "styp", "free", "skip":
		return pl.br.skip(b)
	default:
		return fmt.Errorf("unexpected box %q at byte %d: a fragmented chunk has ftyp, moov, then moof+mdat pairs", b.Name, b.start)
	}
}

// readFtyp keeps the chunk's ftyp for its init, which the moov completes.
func (pl *placer) readFtyp(b box) error {
	if pl.ftyp != nil || pl.out.Init != nil {
		return fmt.Errorf("%s: the chunk's ftyp must come first, once", b)
	}
	var err error
	pl.ftyp, err = pl.br.read(b)
	return err
}

// copyMdat copies a sample data box as it is read: the moof before it
// addresses its samples from the moof's start, so it needs no change.
func (pl *placer) copyMdat(b box, afterMoof bool) error {
	if !afterMoof {
		return fmt.Errorf("%s is not after a moof: the chunk is not fragmented (stream-copy it with FragmentArgs)", b)
	}
	if err := writeHeader(pl.dst, b); err != nil {
		return err
	}
	return pl.br.copyBody(pl.dst, b)
}

func (pl *placer) readMoov(b box) error {
	if pl.out.Init != nil {
		return fmt.Errorf("%s: a second moov", b)
	}
	raw, err := pl.br.read(b)
	if err != nil {
		return err
	}
	chunkInit, err := newInit(pl.ftyp, raw)
	if err != nil {
		return err
	}
	if err := checkFragmented(raw); err != nil {
		return err
	}
	tracks := chunkInit.Tracks
	if len(tracks) != 1 || tracks[0].Handler != "vide" {
		return fmt.Errorf("the chunk has tracks %s: only a single video track can be placed", trackList(tracks))
	}
	ticks, err := pl.p.Rate.FrameTicks(tracks[0].Timescale)
	if err != nil {
		return err
	}
	pl.ticks = uint64(ticks)
	carry, first := bits.Mul64(uint64(pl.p.Start), pl.ticks)
	delay := uint64(pl.p.Delay) * pl.ticks
	if carry != 0 || first+delay < first || delay > math.MaxInt32 {
		return fmt.Errorf("start frame %d and delay %d frames of %d ticks overflow a decode time", pl.p.Start, pl.p.Delay, ticks)
	}
	normal, err := normalizeMoov(raw, int64(delay))
	if err != nil {
		return err
	}
	init, err := newInit(pl.ftyp, normal)
	if err != nil {
		return err
	}
	pl.track = init.Tracks[0]
	pl.out = Placed{Init: init, Timescale: pl.track.Timescale, SampleDuration: ticks, FirstDecodeTime: first}
	if pl.p.WriteInit {
		if _, err := pl.dst.Write(init.Bytes()); err != nil {
			return fmt.Errorf("write the init: %w", err)
		}
	}
	return nil
}

// checkFragmented refuses a moov without mvex or one that indexes
// samples itself: a plain MP4, whose media no moof describes.
func checkFragmented(moov []byte) error {
	decoded, err := decode(moov, mp4.DecodeMoov)
	if err != nil {
		return err
	}
	m := decoded.(*mp4.MoovBox)
	if m.Mvex == nil {
		return errors.New("the chunk is not fragmented: its moov has no mvex (stream-copy it with FragmentArgs)")
	}
	for _, trak := range m.Traks {
		if trak.Mdia == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil {
			continue
		}
		if stsz := trak.Mdia.Minf.Stbl.Stsz; stsz != nil && stsz.SampleNumber > 0 {
			return fmt.Errorf("the chunk is not purely fragmented: its moov indexes %d samples (stream-copy it with FragmentArgs, which sets empty_moov)", stsz.SampleNumber)
		}
	}
	return nil
}

func trackList(tracks []Track) string {
	s := ""
	for i, t := range tracks {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d (%s %s)", t.ID, t.Handler, t.Codec)
	}
	return s
}

// placeMoof rewrites one moof and writes it.
func (pl *placer) placeMoof(b box) error {
	n := pl.out.Fragments + 1
	if pl.out.Init == nil {
		return fmt.Errorf("%s before the moov", b)
	}
	raw, err := pl.br.read(b)
	if err != nil {
		return err
	}
	if err := checkBoxCounts(raw); err != nil {
		return fmt.Errorf("fragment %d (%s): %w", n, b, err)
	}
	decoded, err := decodeExact(raw, mp4.DecodeMoof)
	if err != nil {
		return fmt.Errorf("fragment %d (%s): %w", n, b, err)
	}
	moof := decoded.(*mp4.MoofBox)
	if moof.Mfhd == nil || len(moof.Trafs) != 1 {
		return fmt.Errorf("fragment %d (%s): a moof with an mfhd and one traf is expected, not %d trafs", n, b, len(moof.Trafs))
	}
	if err := pl.placeTraf(moof.Traf); err != nil {
		return fmt.Errorf("fragment %d (%s): %w", n, b, err)
	}
	if n > 1 && pl.seq == 0 {
		return fmt.Errorf("fragment %d: sequence numbers from %d ran past %d", n, pl.p.Sequence, uint32(math.MaxUint32))
	}
	moof.Mfhd.SequenceNumber = pl.seq
	pl.seq++
	// The moof may have grown (a wider tfdt, composition offsets added);
	// sample data is addressed from the moof's start, so it moved as much.
	if grown := int64(moof.Size()) - int64(len(raw)); grown != 0 {
		for _, trun := range moof.Traf.Truns {
			if !trun.HasDataOffset() {
				return fmt.Errorf("fragment %d: the moof grew by %d bytes and a trun has no data offset to move", n, grown)
			}
			trun.DataOffset += int32(grown)
		}
	}
	data, err := encode(moof)
	if err != nil {
		return fmt.Errorf("fragment %d: %w", n, err)
	}
	if _, err := pl.dst.Write(data); err != nil {
		return fmt.Errorf("fragment %d: %w", n, err)
	}
	pl.out.Fragments++
	return nil
}

// placeTraf shifts the decode time and the composition offsets of one
// track fragment and checks its samples.
func (pl *placer) placeTraf(traf *mp4.TrafBox) error {
	if err := pl.checkTraf(traf); err != nil {
		return err
	}
	defaultDur := pl.track.Defaults.Duration
	if traf.Tfhd.HasDefaultSampleDuration() {
		defaultDur = traf.Tfhd.DefaultSampleDuration
	}
	rel, err := pl.placeDecodeTime(traf, defaultDur)
	if err != nil {
		return err
	}
	for _, trun := range traf.Truns {
		for i := range trun.Samples {
			s := &trun.Samples[i]
			if !trun.HasSampleDuration() {
				s.Dur = defaultDur
			}
			if err := pl.placeSample(trun, s, rel); err != nil {
				return err
			}
			rel += uint64(s.Dur)
			pl.out.Samples++
		}
	}
	pl.nextDecode = pl.firstDecode + rel
	return nil
}

// checkTraf refuses a track fragment that cannot be placed: not of the
// moov's track, its sample data at an absolute offset (which would not
// move with the fragment), or without a decode time or samples.
func (pl *placer) checkTraf(traf *mp4.TrafBox) error {
	tfhd := traf.Tfhd
	switch {
	case tfhd == nil:
		return errors.New("traf has no tfhd")
	case tfhd.TrackID != pl.track.ID:
		return fmt.Errorf("traf of track ID %d; the moov's track is %d", tfhd.TrackID, pl.track.ID)
	case tfhd.HasBaseDataOffset():
		return errors.New("tfhd has an absolute base data offset: sample data would not move with the fragment (fragment with default_base_moof)")
	case traf.Tfdt == nil:
		return errors.New("traf has no tfdt: its decode time is unknown")
	case len(traf.Truns) == 0:
		return errors.New("traf has no trun")
	}
	return nil
}

// placeDecodeTime moves the fragment's decode time (tfdt) to its place on
// the job's timeline, after checking that it follows the fragment before
// without a gap or an overlap. The first fragment sets the chunk's own
// start and the composition offset shift. rel is the fragment's decode
// time after the chunk's first.
func (pl *placer) placeDecodeTime(traf *mp4.TrafBox, defaultDur uint32) (rel uint64, err error) {
	tfdt := traf.Tfdt
	decode := tfdt.BaseMediaDecodeTime()
	if pl.out.Fragments == 0 {
		pl.firstDecode, pl.nextDecode = decode, decode
		// The chunk's first presented frame is in its first fragment: a
		// fragment starts at a keyframe, and nothing decoded after a
		// keyframe is presented before it.
		pl.ctoShift = int64(pl.p.Delay)*int64(pl.ticks) - earliestPresentation(traf.Truns, defaultDur)
	}
	if decode != pl.nextDecode {
		return 0, fmt.Errorf("tfdt %d, but the fragments before end at %d: decode times must be contiguous", decode, pl.nextDecode)
	}
	// Times from here on are relative to the chunk's first decode time.
	rel = decode - pl.firstDecode
	version := tfdt.Version
	tfdt.SetBaseMediaDecodeTime(pl.out.FirstDecodeTime + rel)
	tfdt.Version = max(tfdt.Version, version) // keep the size if the value fits
	return rel, nil
}

// placeSample checks that sample s of trun, decoded rel ticks after the
// chunk's first, lasts one frame and is presented on a frame of the chunk
// no other sample is, and shifts its composition offset by the placement's
// delay.
func (pl *placer) placeSample(trun *mp4.TrunBox, s *mp4.Sample, rel uint64) error {
	nr := pl.out.Samples + 1
	if uint64(s.Dur) != pl.ticks {
		return fmt.Errorf("sample %d lasts %d ticks; a frame at %s fps is %d ticks of timescale %d: the chunk is not at the job's frame rate, or its frame durations vary",
			nr, s.Dur, pl.p.Rate, pl.ticks, pl.out.Timescale)
	}
	cto := int64(s.CompositionTimeOffset) + pl.ctoShift
	if cto < 0 {
		return fmt.Errorf("sample %d would be presented %d ticks before it is decoded: the chunk reorders frames by more than the delay of %d frames", nr, -cto, pl.p.Delay)
	}
	if cto > math.MaxInt32 {
		return fmt.Errorf("sample %d: composition offset %d does not fit 32 bits", nr, cto)
	}
	if err := pl.showFrame(nr, rel, cto); err != nil {
		return err
	}
	s.CompositionTimeOffset = int32(cto)
	if cto != 0 {
		trun.Flags |= mp4.TrunSampleCompositionTimeOffsetPresentFlag
	}
	return nil
}

// showFrame records the frame of the chunk that sample nr, decoded rel
// ticks after the chunk's first and presented cto ticks after that, is
// presented on: it must be a whole frame at or after the chunk's start,
// within maxReorder frames of the sample's decode, and no earlier
// sample's.
func (pl *placer) showFrame(nr int, rel uint64, cto int64) error {
	delay := int64(pl.p.Delay) * int64(pl.ticks)
	presented := int64(rel) + cto - delay // after the chunk's start
	if presented < 0 || uint64(presented)%pl.ticks != 0 {
		return fmt.Errorf("sample %d is presented %d ticks after the chunk's first frame, not on a frame of %d ticks at or after it", nr, presented, pl.ticks)
	}
	frame := uint64(presented) / pl.ticks
	if frame >= uint64(nr)+maxReorder {
		return fmt.Errorf("sample %d is presented on frame %d of the chunk, more than %d frames after it is decoded", nr, frame, maxReorder)
	}
	if !pl.shown.add(frame) {
		return fmt.Errorf("sample %d is presented on frame %d of the chunk, as an earlier sample is", nr, frame)
	}
	return nil
}

// earliestPresentation is the earliest presentation time of a fragment's
// samples after its decode time.
func earliestPresentation(truns []*mp4.TrunBox, defaultDur uint32) int64 {
	var decode int64
	earliest := int64(math.MaxInt64)
	for _, trun := range truns {
		for _, s := range trun.Samples {
			earliest = min(earliest, decode+int64(s.CompositionTimeOffset))
			if trun.HasSampleDuration() {
				decode += int64(s.Dur)
			} else {
				decode += int64(defaultDur)
			}
		}
	}
	return earliest
}

// finish checks, at the end of the chunk, that it was fragmented and that
// its frames are presented one after another from its start: n samples on
// n distinct frames, none after frame n-1, leave no frame out.
func (pl *placer) finish() error {
	switch {
	case pl.out.Init == nil:
		return errors.New("no moov box: not an MP4 file, or a truncated one")
	case pl.out.Fragments == 0:
		return errors.New("no moof box: the chunk is not fragmented (stream-copy it with FragmentArgs)")
	case pl.out.Samples == 0:
		return errors.New("no samples in the chunk's fragments")
	case pl.moofSeen:
		return errors.New("the last moof has no mdat: truncated")
	case pl.shown.last() != uint64(pl.out.Samples-1):
		return fmt.Errorf("%d samples, but the last is presented on frame %d of the chunk: some frame between is shown by none", pl.out.Samples, pl.shown.last())
	}
	return nil
}
