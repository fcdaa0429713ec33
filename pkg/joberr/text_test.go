package joberr_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

func TestShorten(t *testing.T) {
	uri := "data:audio/wav;base64," + strings.Repeat("UklG", 1000)
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{"media " + uri + " cannot be mixed", "media " + uri[:100] + "… (4022 characters) cannot be mixed"},
		{strings.Repeat("é", 150), strings.Repeat("é", 50) + "… (150 characters)"},
		{strings.Repeat("word ", 100), strings.Repeat("word ", 100)},
	} {
		if got := joberr.ShortenWords(tc.in); got != tc.want {
			t.Errorf("ShortenWords(%.40q…) = %.200q, want %.200q", tc.in, got, tc.want)
		}
	}
	if e := joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "chunk command %q", uri); len(e.Message) > 150 {
		t.Errorf("Errorf kept a long value: %d bytes", len(e.Message))
	}
}

// A warning every chunk reports is kept once, with the first chunks and a
// count; at most job.MaxWarnings messages; a chunk reporting again (a
// re-render) counts once.
func TestStatusWarnings(t *testing.T) {
	var st job.Status
	for c := range 40 {
		st.AddWarnings(c, []string{"the same for all", fmt.Sprintf("only chunk %d", c)})
	}
	st.AddWarnings(3, []string{"the same for all"})
	if len(st.Warnings) != job.MaxWarnings || st.WarningsLeftOut != 40-(job.MaxWarnings-1) {
		t.Fatalf("%d warnings kept and %d left out, want %d and %d", len(st.Warnings), st.WarningsLeftOut, job.MaxWarnings, 40-(job.MaxWarnings-1))
	}
	w := st.Warnings[0]
	if w.Message != "the same for all" || w.Count != 40 || len(w.Chunks) != job.MaxWarningChunks || w.Chunks[9] != 9 {
		t.Errorf("first warning = %+v", w)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back job.Status
	if err := json.Unmarshal(data, &back); err != nil || len(back.Warnings) != job.MaxWarnings || back.Warnings[1].Message != "only chunk 0" {
		t.Errorf("round trip: %+v, %v", back.Warnings, err)
	}
}
