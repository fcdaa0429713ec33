package pipeline

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// On Cloud Run a line's level and message are where Cloud Logging reads
// them.
func TestCloudLoggingFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: cloudLogging}))
	log.Warn("chunk failed", "chunk", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["severity"] != "WARNING" || line["message"] != "chunk failed" || line["level"] != nil || line["chunk"] != float64(3) {
		t.Errorf("line = %v", line)
	}
}
