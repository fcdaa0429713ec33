package job_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

func bigStatus(chunks int, state job.State) job.Status {
	st := job.Status{JobID: "big", State: state, TotalFrames: chunks * 3, ChunksTotal: chunks}
	for i := range chunks {
		c := job.ChunkStatus{Index: i, Start: i * 3, Count: 3, State: job.StateDone, Attempts: 1}
		switch {
		case i == chunks-1:
			c.Count = 2
		case i%200 == 7: // a retried chunk
			c.Attempts = 2
			c.DurationMs = 1234
		case i%500 == 11:
			c.State, c.Attempts = job.StateRunning, 1
		case i%500 == 12:
			c.State, c.Attempts = job.StatePending, 0
		case i == 13:
			c.State, c.Attempts = job.StateFailed, 3
			c.Error = &joberr.Error{Kind: joberr.Permanent, Code: joberr.CodeCommandFailed, Message: "ffmpeg exited with status 1", StderrTail: "boom"}
		}
		st.Chunks = append(st.Chunks, c)
	}
	return st
}

// The stored form reads back to the same status, and at 10,000 chunks it
// is at most 64 KB.
func TestStatusRoundTripAndSize(t *testing.T) {
	st := bigStatus(10_000, job.StateRunning)
	data, err := json.MarshalIndent(st, "", "  ") // as the store writes it
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 64<<10 {
		t.Errorf("a 10,000-chunk status is %d bytes, want at most 64 KB", len(data))
	}
	var back job.Status
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		for i := range st.Chunks {
			if i >= len(back.Chunks) || !reflect.DeepEqual(back.Chunks[i], st.Chunks[i]) {
				t.Fatalf("chunk %d reads back as %+v, want %+v", i, back.Chunks[i], st.Chunks[i])
			}
		}
		t.Fatalf("status reads back differently")
	}
}

// Segment keys stay in the completion markers: not even a failed job's
// status grows with them.
func TestSegmentKeysAreNotStored(t *testing.T) {
	st := bigStatus(10_000, job.StateFailed)
	for i := range st.Chunks {
		st.Chunks[i].SegmentKey = "renders/big/chunks/000002.1-1.mp4"
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	if len(data) > 64<<10 || strings.Contains(string(data), "segmentKey") {
		t.Errorf("a failed 10,000-chunk job's status is %d bytes, with segment keys: %v", len(data), strings.Contains(string(data), "segmentKey"))
	}
}

// Statuses written before the compact form still read.
func TestLegacyStatus(t *testing.T) {
	var st job.Status
	err := json.Unmarshal([]byte(`{"jobId":"old","state":"done","chunksTotal":2,"chunks":[
	  {"index":0,"start":0,"count":5,"state":"done","attempts":1},{"index":1,"start":5,"count":5,"state":"done","attempts":2}]}`), &st)
	if err != nil || len(st.Chunks) != 2 || st.Chunks[1].Attempts != 2 || st.Chunks[1].Start != 5 {
		t.Fatalf("legacy status: %+v, %v", st, err)
	}
}

func TestBadCompactStatus(t *testing.T) {
	for _, doc := range []string{
		`{"chunkStates":"dd","chunkFrames":[[3,3]]}`,
		`{"chunkStates":"ddd","chunkFrames":[[3,2]]}`,
		`{"chunkStates":"dx","chunkFrames":[[3,2]]}`,
		`{"chunkStates":"dd","chunkFrames":[[3,2]],"chunkDetails":[{"index":5,"state":"done"}]}`,
	} {
		var st job.Status
		if err := json.Unmarshal([]byte(doc), &st); err == nil {
			t.Errorf("%s read without an error", doc)
		}
	}
}
