package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestScoreFlagsBecomeTheRequest(t *testing.T) {
	cmd, err := parseArgs([]string{
		"score", "--model", "fraud", "--entity", "card=c-1", "--entity", "customer=u=9", "--alias", "",
		"--context-json", `{"amount": 12, "country": "DE", "new": true, "gone": null, "recent": ["a", "b"]}`,
		"--feature", "amount_24h=3.5", "--request-id", "r-1", "--deadline-ms", "50",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := cmd.score
	if r == nil || cmd.recommend != nil || cmd.common.deadlineMs != 50 || cmd.common.target != "127.0.0.1:50054" {
		t.Fatalf("parsed %+v", cmd)
	}
	if r.GetModel() != "fraud" || r.GetRequestId() != "r-1" || r.Alias == nil || r.GetAlias() != "" || r.Version != nil {
		t.Fatalf("request %v", r)
	}
	if r.GetEntityIds()["card"] != "c-1" || r.GetEntityIds()["customer"] != "u=9" || r.GetFeatures()["amount_24h"] != 3.5 {
		t.Fatalf("ids/features %v %v", r.GetEntityIds(), r.GetFeatures())
	}
	c := r.GetContext()
	if c["amount"].GetDoubleValue() != 12 || c["country"].GetStringValue() != "DE" || !c["new"].GetBoolValue() {
		t.Fatalf("context %v", c)
	}
	if c["gone"].GetKind() != nil {
		t.Fatalf("null must be a Value with no kind, got %v", c["gone"])
	}
	if list := c["recent"].GetListValue().GetValues(); len(list) != 2 || list[1].GetStringValue() != "b" {
		t.Fatalf("list %v", c["recent"])
	}
}

func TestRecommendFlagsBecomeTheRequest(t *testing.T) {
	cmd, err := parseArgs([]string{
		"recommend", "--target", "h:1", "--model", "next", "--entity", "user=u-1", "--version", "3",
		"--context-item", "i-2", "--context-item", "i-1", "--k", "5", "--exclude", "i-9", "--exclude", "i-8",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := cmd.recommend
	if r == nil || cmd.score != nil || cmd.common.target != "h:1" {
		t.Fatalf("parsed %+v", cmd)
	}
	if r.GetVersion() != 3 || r.Alias != nil || r.GetK() != 5 || r.GetEntityIds()["user"] != "u-1" {
		t.Fatalf("request %v", r)
	}
	if strings.Join(r.GetContextItems(), ",") != "i-2,i-1" || strings.Join(r.GetExcludeItems(), ",") != "i-9,i-8" {
		t.Fatalf("items %v %v", r.GetContextItems(), r.GetExcludeItems())
	}
}

func TestBadFlagsAreRefusedByName(t *testing.T) {
	cases := map[string][]string{
		"missing subcommand":       {},
		"unknown subcommand":       {"predict", "--model", "m"},
		"--model is required":      {"score"},
		"--deadline-ms must be":    {"score", "--model", "m", "--deadline-ms", "0"},
		"--entity must be TYPE=ID": {"score", "--model", "m", "--entity", "c-1"},
		"--version must be":        {"score", "--model", "m", "--version", "x"},
		"--feature f":              {"score", "--model", "m", "--feature", "f=abc"},
		"--context-json \"o\"":     {"score", "--model", "m", "--context-json", `{"o": {"x": 1}}`},
		"must be a JSON object":    {"score", "--model", "m", "--context-json", `[1]`},
		"--k is not a flag":        {"score", "--model", "m", "--k", "3"},
		"--feature is not a flag":  {"recommend", "--model", "m", "--feature", "a=1"},
		"--k must be in":           {"recommend", "--model", "m", "--k", "-1"},
		"unexpected argument":      {"recommend", "--model", "m", "extra"},
	}
	for want, args := range cases {
		if _, err := parseArgs(args); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want an error containing %q", args, err, want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"score"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage:") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestCodeNamesAreCanonical(t *testing.T) {
	for code, want := range map[codes.Code]string{
		codes.Canceled: "CANCELLED", codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.Unauthenticated: "UNAUTHENTICATED",
		codes.Code(42): "Code(42)",
	} {
		if got := codeName(code); got != want {
			t.Errorf("%v: %q, want %q", code, got, want)
		}
	}
	line := failedLine(status.Error(codes.NotFound, "model x: not found"), 0)
	if line.Status != "NOT_FOUND" || line.Message != "model x: not found" {
		t.Errorf("%+v", line)
	}
}

func TestNumbersRoundTripAndNonFiniteAreStrings(t *testing.T) {
	data, err := json.Marshal([]number{0.1, 1e-300, number(math.NaN()), number(math.Inf(-1)), 0.30000000000000004})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `[0.1,1e-300,"NaN","-Infinity",0.30000000000000004]` {
		t.Errorf("%s", data)
	}
}
