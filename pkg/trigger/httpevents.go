package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// CloudEvent types the orchestrator takes (Eventarc's names).
const (
	EventStorageFinalized = "google.cloud.storage.object.v1.finalized"
	EventPubSubPublished  = "google.cloud.pubsub.topic.v1.messagePublished"
)

// GCSObject is what a GCS upload event says of the object: the data of a
// google.cloud.storage.object.v1.finalized CloudEvent, and of a Pub/Sub
// notification with payload format JSON_API_V1 (the JSON API's object
// resource, which carries int64 fields as strings).
type GCSObject struct {
	Bucket      string     `json:"bucket"`
	Name        string     `json:"name"`
	Generation  Int64Field `json:"generation"`
	Size        Int64Field `json:"size"`
	ContentType string     `json:"contentType,omitempty"`
}

// Int64Field is an int64 that GCS sends as a JSON string ("1587627537231057");
// a bare number is accepted too.
type Int64Field int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int64Field) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("expected an integer (as a string), got %s", b)
	}
	*n = Int64Field(v)
	return nil
}

// PubSubPush is the body of a Pub/Sub push request, and the data of an
// Eventarc google.cloud.pubsub.topic.v1.messagePublished CloudEvent.
type PubSubPush struct {
	Message      PubSubMessage `json:"message"`
	Subscription string        `json:"subscription"`
}

// PubSubMessage is one Pub/Sub message. A GCS notification carries the
// object in Data and says what happened in Attributes (eventType, bucketId,
// objectId); a continuation carries {"jobId": "<id>"} in Data.
type PubSubMessage struct {
	Data        []byte            `json:"data"` // base64 in JSON
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId,omitempty"`
	PublishTime time.Time         `json:"publishTime,omitzero"`
}

// badEvent is a request that no retry can make right: a 4xx.
type badEvent struct{ msg string }

func (e *badEvent) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badEvent{msg: fmt.Sprintf(format, args...)} }

// decodeRequest reads the event a POST / carries and names its envelope
// ("cloudevent", "pubsub", "direct"). The error is a *badEvent, or the
// body's own (too large, cut short).
func (h *Handler) decodeRequest(r *http.Request) (string, event, error) {
	var ctype string
	if ct := r.Header.Get("Content-Type"); ct != "" {
		ctype, _, _ = mime.ParseMediaType(ct)
	}
	if r.Header.Get("Ce-Specversion") != "" || ctype == "application/cloudevents+json" {
		ev, err := h.cloudEvent(r)
		return "cloudevent", ev, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", event{}, err
	}
	return h.jsonEvent(body)
}

// cloudEvent decodes a CloudEvent in binary or structured content mode: a
// GCS object finalized, or a Pub/Sub message published.
func (h *Handler) cloudEvent(r *http.Request) (event, error) {
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return event{}, err
	}
	if err != nil {
		return event{}, badf("not a CloudEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		return event{}, badf("invalid CloudEvent: %v", err)
	}
	switch ev.Type() {
	case EventStorageFinalized:
		var obj GCSObject
		if err := json.Unmarshal(ev.Data(), &obj); err != nil || obj.Name == "" || obj.Bucket == "" {
			return event{}, badf("CloudEvent %s %s: data is not a GCS object with bucket and name: %v", ev.Type(), ev.ID(), err)
		}
		return event{kind: upload, bucket: obj.Bucket, key: obj.Name}, nil
	case EventPubSubPublished:
		var push PubSubPush
		if err := json.Unmarshal(ev.Data(), &push); err != nil {
			return event{}, badf("CloudEvent %s %s: data is not a Pub/Sub message: %v", ev.Type(), ev.ID(), err)
		}
		return h.pubsubEvent(push.Message)
	}
	return event{}, badf("CloudEvent type %q is not handled: send %s (uploads under %s) or %s", ev.Type(),
		EventStorageFinalized, layout.JobsPrefix, EventPubSubPublished)
}

// jsonEvent decodes a plain JSON body: a Pub/Sub push, or a direct call.
func (h *Handler) jsonEvent(body []byte) (string, event, error) {
	var probe struct {
		Message      json.RawMessage `json:"message"`
		Subscription string          `json:"subscription"`
		JobID        string          `json:"jobId"`
		Key          string          `json:"key"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return "", event{}, badf("body is not a JSON object: %v", err)
	}
	switch {
	case probe.Message != nil:
		var push PubSubPush
		if err := json.Unmarshal(body, &push); err != nil {
			return "pubsub", event{}, badf("Pub/Sub push does not decode: %v", err)
		}
		ev, err := h.pubsubEvent(push.Message)
		return "pubsub", ev, err
	case probe.JobID != "" || probe.Key != "":
		var in Invoke
		if err := decodeStrict(body, &in); err != nil {
			return "direct", event{}, badf(`expected {"jobId": "<id>"} or {"key": "jobs/<id>.json"}: %v`, err)
		}
		ev, err := h.callEvent(in)
		return "direct", ev, err
	}
	return "", event{}, badf(`unrecognised event: expected a CloudEvent (ce-* headers or application/cloudevents+json), a Pub/Sub push {"message": …, "subscription": …}, {"jobId": "<id>"} or {"key": "jobs/<id>.json"}`)
}

// pubsubEvent decodes one Pub/Sub message: a GCS notification, or a
// continuation {"jobId"}.
func (h *Handler) pubsubEvent(m PubSubMessage) (event, error) {
	if et := m.Attributes["eventType"]; et != "" {
		ev := event{kind: upload, bucket: m.Attributes["bucketId"], key: m.Attributes["objectId"]}
		if et != "OBJECT_FINALIZE" {
			ev.skip = "GCS " + et + " is not an upload"
			return ev, nil
		}
		if ev.bucket == "" || ev.key == "" {
			return event{}, badf("GCS notification %s without bucketId and objectId attributes", m.MessageID)
		}
		return ev, nil
	}
	var in Invoke
	if err := decodeStrict(m.Data, &in); err != nil || (in.JobID == "" && in.Key == "") {
		return event{}, badf(`Pub/Sub message %s is neither a GCS notification (eventType attribute) nor {"jobId": "<id>"}: %v`, m.MessageID, err)
	}
	return h.callEvent(in)
}

// callEvent is the event of a direct call over HTTP. {"key"} is the
// upload of that key in the orchestrator's bucket handed on again (what
// continuedAfterFailure sends when the upload may not have been accepted),
// so it is treated as one: ignored if not jobs/<id>.json, a duplicate if
// the job is running. {"jobId"} resumes.
func (h *Handler) callEvent(in Invoke) (event, error) {
	switch {
	case in.JobID != "" && in.Key != "":
		return event{}, badf("give jobId or key, not both")
	case in.Key != "":
		return event{kind: upload, bucket: h.BucketName, key: in.Key}, nil
	case !layout.ValidID(in.JobID):
		return event{}, badf("jobId %q: expected %s", in.JobID, layout.IDRule)
	}
	return event{kind: resume, jobID: in.JobID}, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
