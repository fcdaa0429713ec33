package fmp4

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// mp4ff allocates what a box's entry count claims before reading a single
// entry, so one corrupt count can exhaust memory and kill the process (a
// fatal error, not a panic). These checks go through the boxes that carry
// counts before mp4ff sees them, and refuse a count that its box's bytes
// cannot hold.

// maxEntries bounds a count whose entries take no bytes (a trun whose
// samples all take default values, an stsz of one size for all), and so
// what mp4ff allocates for it: no fragment has that many frames.
const maxEntries = 1 << 20

// countedEntries says where a full box's entry count is (in its body) and
// how many bytes an entry takes; 0 for a count whose entries may take none.
func countedEntries(b *rawBox) (countAt, entrySize int, ok bool) {
	body := b.data[b.hdrLen:]
	switch b.typ {
	case "stts", "ctts", "co64":
		return 4, 8, true
	case "stsc":
		return 4, 12, true
	case "stco", "stss":
		return 4, 4, true
	case "stsz": // a sample size, then the count; sizes only if it is 0
		if len(body) >= 8 && binary.BigEndian.Uint32(body[4:]) != 0 {
			return 8, 0, true
		}
		return 8, 4, true
	case "elst":
		if len(body) > 0 && body[0] == 1 {
			return 4, 20, true
		}
		return 4, 12, true
	case "trun":
		if len(body) < 8 {
			return 4, 0, true // refused as too short
		}
		flags := binary.BigEndian.Uint32(body) & 0xffffff
		return 4, 4 * bits.OnesCount32(flags&0xf00), true // duration, size, flags, composition offset
	}
	return 0, 0, false
}

// checkCounts walks the containers of boxes (moov, moof and those below)
// and checks every entry count on the way.
func checkCounts(boxes []*rawBox) error {
	for _, b := range boxes {
		switch b.typ {
		case "moov", "trak", "mdia", "minf", "stbl", "edts", "moof", "traf":
			if err := b.open(); err != nil {
				return err
			}
			if err := checkCounts(b.kids); err != nil {
				return err
			}
			continue
		}
		countAt, entrySize, ok := countedEntries(b)
		if !ok {
			continue
		}
		body := b.data[b.hdrLen:]
		if len(body) < countAt+4 {
			return fmt.Errorf("%s box of %d bytes is too short", b.typ, len(b.data))
		}
		count := uint64(binary.BigEndian.Uint32(body[countAt:]))
		if count*uint64(entrySize) > uint64(len(body)) || entrySize == 0 && count > maxEntries {
			return fmt.Errorf("%s box of %d bytes claims %d entries", b.typ, len(b.data), count)
		}
	}
	return nil
}

// checkBoxCounts checks the entry counts in one whole box, such as a moov
// or a moof, before mp4ff decodes it.
func checkBoxCounts(raw []byte) error {
	boxes, err := splitBoxes(raw)
	if err != nil {
		return err
	}
	return checkCounts(boxes)
}
