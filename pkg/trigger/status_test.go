package trigger_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/trigger"
)

// GET /jobs/{id} answers the status's compact fields with outputUrl beside
// them, and reads back whole.
func TestStatusResponseJSON(t *testing.T) {
	st := &job.Status{JobID: "j", State: job.StateDone, ChunksTotal: 2, Output: "renders/j/output.mp4",
		Chunks: []job.ChunkStatus{{Index: 0, Count: 5, State: job.StateDone, Attempts: 1}, {Index: 1, Start: 5, Count: 5, State: job.StateDone, Attempts: 2}}}
	data, err := json.Marshal(trigger.StatusResponse{Status: st, OutputURL: "https://signed.example/x?sig=1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"outputUrl":"https://signed.example/x?sig=1"`, `"chunkStates":"dd"`, `"jobId":"j"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("answer lacks %s: %s", want, data)
		}
	}
	var back trigger.StatusResponse
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.OutputURL != "https://signed.example/x?sig=1" || back.JobID != "j" || len(back.Chunks) != 2 || back.Chunks[1].Attempts != 2 {
		t.Errorf("read back: %+v %+v", back, back.Status)
	}
}
