package job

import (
	"encoding/json"
	"fmt"
)

// chunkLetters are a chunk's states as status.json spells them.
var chunkLetters = map[State]byte{StatePending: 'p', StateRunning: 'r', StateDone: 'd', StateFailed: 'f', StateCancelled: 'c', StateStitching: 's'}

// statusWire is Status as stored and served: at 10,000 chunks the
// per-chunk list would be 2 MB, rewritten every second. Instead:
//
//	chunkStates   one letter per chunk: p pending, r running, d done, f failed, c cancelled
//	chunkFrames   the chunks' frame counts, run-length encoded: [[frames, chunks], ...]
//	chunkDetails  in full, the chunks with more to tell: an error, a failed
//	              state, or attempts other than the state implies (a retry)
//
// A 10,000-chunk job's status is then about 11 KB plus its details. Segment
// keys are not stored here (each chunk's completion marker names its
// segment), nor the durations of chunks without details (the job's
// history has every attempt's).
type statusWire struct {
	*statusFields
	ChunkStates  string        `json:"chunkStates,omitempty"`
	ChunkFrames  [][2]int      `json:"chunkFrames,omitempty"`
	ChunkDetails []ChunkStatus `json:"chunkDetails,omitempty"`
}

// statusFields is Status without its methods, so encoding it does not
// recurse.
type statusFields Status

// MarshalJSON writes the compact form.
func (s Status) MarshalJSON() ([]byte, error) {
	fields := statusFields(s)
	fields.Chunks = nil
	w := statusWire{statusFields: &fields}
	states := make([]byte, len(s.Chunks))
	for i, c := range s.Chunks {
		letter, ok := chunkLetters[c.State]
		if !ok {
			return nil, fmt.Errorf("chunk %d: unknown state %q", i, c.State)
		}
		states[i] = letter
		if n := len(w.ChunkFrames); n > 0 && w.ChunkFrames[n-1][0] == c.Count {
			w.ChunkFrames[n-1][1]++
		} else {
			w.ChunkFrames = append(w.ChunkFrames, [2]int{c.Count, 1})
		}
		if c.detailed() {
			c.SegmentKey = ""
			w.ChunkDetails = append(w.ChunkDetails, c)
		}
	}
	w.ChunkStates = string(states)
	return json.Marshal(w)
}

// detailed reports whether a chunk's record says more than its letter.
func (c ChunkStatus) detailed() bool {
	if c.Error != nil {
		return true
	}
	switch c.State {
	case StatePending:
		return c.Attempts != 0
	case StateRunning, StateDone:
		return c.Attempts != 1
	}
	return true
}

// UnmarshalJSON reads the compact form (and the full "chunks" list that
// statuses written before it carry).
func (s *Status) UnmarshalJSON(data []byte) error {
	var w statusWire
	w.statusFields = (*statusFields)(s)
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.ChunkStates == "" {
		return nil
	}
	letters := map[byte]State{}
	for st, l := range chunkLetters {
		letters[l] = st
	}
	s.Chunks = make([]ChunkStatus, 0, len(w.ChunkStates))
	start := 0
	for _, run := range w.ChunkFrames {
		for range run[1] {
			i := len(s.Chunks)
			if i >= len(w.ChunkStates) {
				return fmt.Errorf("status: chunkFrames name more chunks than chunkStates (%d)", len(w.ChunkStates))
			}
			st, ok := letters[w.ChunkStates[i]]
			if !ok {
				return fmt.Errorf("status: chunk %d has state letter %q", i, w.ChunkStates[i])
			}
			c := ChunkStatus{Index: i, Start: start, Count: run[0], State: st}
			if st == StateRunning || st == StateDone {
				c.Attempts = 1
			}
			s.Chunks = append(s.Chunks, c)
			start += run[0]
		}
	}
	if len(s.Chunks) != len(w.ChunkStates) {
		return fmt.Errorf("status: chunkFrames name %d chunks, chunkStates %d", len(s.Chunks), len(w.ChunkStates))
	}
	for _, d := range w.ChunkDetails {
		if d.Index < 0 || d.Index >= len(s.Chunks) {
			return fmt.Errorf("status: details of chunk %d, of %d", d.Index, len(s.Chunks))
		}
		s.Chunks[d.Index] = d
	}
	return nil
}

// MarshalWithFields writes the status (its compact form) with more
// top-level fields beside its own: what an API answer or a webhook adds.
func (s *Status) MarshalWithFields(extra map[string]any) ([]byte, error) {
	if s == nil {
		return json.Marshal(extra)
	}
	data, err := json.Marshal(*s)
	if err != nil || len(extra) == 0 {
		return data, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	for k, v := range extra {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		doc[k] = raw
	}
	return json.Marshal(doc)
}
