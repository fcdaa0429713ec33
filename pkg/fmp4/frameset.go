package fmp4

import "math/bits"

// maxReorder bounds how many frames after its decode position a sample
// may be presented: far beyond any encoder's reordering, and it keeps a
// corrupt composition offset from growing a frameSet without end.
const maxReorder = 1 << 16

// frameSet is a set of frame numbers: one bit per frame of a chunk.
type frameSet struct {
	words []uint64
}

// add puts frame in the set; false if it was there.
func (s *frameSet) add(frame uint64) bool {
	w := int(frame / 64)
	if w >= len(s.words) {
		s.words = append(s.words, make([]uint64, w+1-len(s.words))...)
	}
	bit := uint64(1) << (frame % 64)
	if s.words[w]&bit != 0 {
		return false
	}
	s.words[w] |= bit
	return true
}

// last is the largest frame in the set; 0 for the empty set (as for {0}).
func (s *frameSet) last() uint64 {
	for w := len(s.words) - 1; w >= 0; w-- {
		if s.words[w] != 0 {
			return uint64(w)*64 + uint64(63-bits.LeadingZeros64(s.words[w]))
		}
	}
	return 0
}
