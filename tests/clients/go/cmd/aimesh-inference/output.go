package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencev1 "github.com/aimesh/aimesh/tests/clients/go/gen/aimesh/api/inference/v1"
)

// number is a float64 that JSON-encodes NaN and ±Inf as the strings "NaN", "Infinity" and "-Infinity"
// (encoding/json refuses them); finite values encode as the shortest text that parses back to them.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(f)
}

func numbers(values []float64) []number {
	out := make([]number, len(values))
	for i, v := range values {
		out[i] = number(v)
	}
	return out
}

func milliseconds(d time.Duration) number { return number(float64(d.Nanoseconds()) / 1e6) }

// nonNil makes an absent repeated field encode as [] rather than null.
func nonNil(values []string) []string {
	if values == nil {
		return []string{}
	}
	return values
}

type scoreOK struct {
	RequestID               string              `json:"request_id"`
	Status                  string              `json:"status"`
	Score                   number              `json:"score"`
	ModelName               string              `json:"model_name"`
	ModelVersion            int64               `json:"model_version"`
	Route                   string              `json:"route"`
	FeatureFreshnessSeconds number              `json:"feature_freshness_seconds"`
	MissingFeatures         []string            `json:"missing_features"`
	Outputs                 map[string][]number `json:"outputs"`
	EventID                 string              `json:"event_id"`
	LatencyMs               number              `json:"latency_ms"`
}

func scoreLine(r *inferencev1.ScoreResponse, elapsed time.Duration) scoreOK {
	outputs := map[string][]number{}
	for name, values := range r.GetOutputs() {
		outputs[name] = numbers(values.GetValues())
	}
	return scoreOK{
		RequestID:               r.GetRequestId(),
		Status:                  "OK",
		Score:                   number(r.GetScore()),
		ModelName:               r.GetModelName(),
		ModelVersion:            r.GetModelVersion(),
		Route:                   r.GetRoute().String(),
		FeatureFreshnessSeconds: number(r.GetFeatureFreshnessSeconds()),
		MissingFeatures:         nonNil(r.GetMissingFeatures()),
		Outputs:                 outputs,
		EventID:                 r.GetEventId(),
		LatencyMs:               milliseconds(elapsed),
	}
}

type recommendedItem struct {
	ItemID string `json:"item_id"`
	Score  number `json:"score"`
}

type recommendOK struct {
	RequestID    string            `json:"request_id"`
	Status       string            `json:"status"`
	ModelName    string            `json:"model_name"`
	ModelVersion int64             `json:"model_version"`
	Route        string            `json:"route"`
	Items        []recommendedItem `json:"items"`
	Fallback     bool              `json:"fallback"`
	UnknownItems []string          `json:"unknown_items"`
	MaxK         int32             `json:"max_k"`
	EventID      string            `json:"event_id"`
	LatencyMs    number            `json:"latency_ms"`
}

func recommendLine(r *inferencev1.RecommendResponse, elapsed time.Duration) recommendOK {
	items := make([]recommendedItem, 0, len(r.GetItems()))
	for _, item := range r.GetItems() {
		items = append(items, recommendedItem{ItemID: item.GetItemId(), Score: number(item.GetScore())})
	}
	return recommendOK{
		RequestID:    r.GetRequestId(),
		Status:       "OK",
		ModelName:    r.GetModelName(),
		ModelVersion: r.GetModelVersion(),
		Route:        r.GetRoute().String(),
		Items:        items,
		Fallback:     r.GetFallback(),
		UnknownItems: nonNil(r.GetUnknownItems()),
		MaxK:         r.GetMaxK(),
		EventID:      r.GetEventId(),
		LatencyMs:    milliseconds(elapsed),
	}
}

type failed struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	LatencyMs number `json:"latency_ms"`
}

// failedLine reports a failed call by its status code's canonical name (e.g. "INVALID_ARGUMENT", as
// grpc-java and grpcio name them) and message.
func failedLine(err error, elapsed time.Duration) failed {
	s := status.Convert(err)
	return failed{Status: codeName(s.Code()), Message: s.Message(), LatencyMs: milliseconds(elapsed)}
}

// codeNames are the canonical status code names (grpc-java's Status.Code, grpcio's StatusCode); Go's
// own String() spells them in camel case ("DeadlineExceeded", "Canceled").
var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return c.String() // "Code(42)"
}

// writeLine writes value as one JSON line.
func writeLine(w io.Writer, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
