package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	commonv1 "github.com/aimesh/aimesh/tests/clients/go/gen/aimesh/api/common/v1"
	inferencev1 "github.com/aimesh/aimesh/tests/clients/go/gen/aimesh/api/inference/v1"
)

const usage = `usage:
  aimesh-inference score     [common flags] [--context-json OBJECT] [--feature NAME=NUMBER ...]
  aimesh-inference recommend [common flags] [--context-item ID ...] [--k N] [--exclude ID ...]
common flags: --target host:port (default 127.0.0.1:50054)  --token-file PATH  --deadline-ms N (default 2000)
  --model NAME (required)  --alias NAME  --version N  --request-id ID  --entity TYPE=ID (repeatable)
`

// commonFlags are the flags of both subcommands.
type commonFlags struct {
	target     string
	tokenFile  string
	deadlineMs int64
}

// command is one parsed invocation: exactly one of score and recommend is set.
type command struct {
	common    commonFlags
	score     *inferencev1.ScoreRequest
	recommend *inferencev1.RecommendRequest
}

// repeated collects every value of a repeatable flag, in order.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// optionalString remembers whether the flag was given at all (an empty alias is still an alias).
type optionalString struct {
	value string
	set   bool
}

func (o *optionalString) String() string     { return o.value }
func (o *optionalString) Set(v string) error { o.value, o.set = v, true; return nil }

// parseArgs turns the command line into a request. Errors name the flag at fault.
func parseArgs(args []string) (*command, error) {
	if len(args) == 0 {
		return nil, errors.New("missing subcommand (score or recommend)")
	}
	sub, args := args[0], args[1:]
	if sub != "score" && sub != "recommend" {
		return nil, fmt.Errorf("unknown subcommand %q (score or recommend)", sub)
	}
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd := &command{}
	fs.StringVar(&cmd.common.target, "target", "127.0.0.1:50054", "")
	fs.StringVar(&cmd.common.tokenFile, "token-file", "", "")
	fs.Int64Var(&cmd.common.deadlineMs, "deadline-ms", 2000, "")
	model := fs.String("model", "", "")
	requestID := fs.String("request-id", "", "")
	var alias, version optionalString
	fs.Var(&alias, "alias", "")
	fs.Var(&version, "version", "")
	var entities repeated
	fs.Var(&entities, "entity", "")
	// score
	contextJSON := fs.String("context-json", "", "")
	var features repeated
	fs.Var(&features, "feature", "")
	// recommend
	var contextItems, exclude repeated
	fs.Var(&contextItems, "context-item", "")
	fs.Var(&exclude, "exclude", "")
	k := fs.Int("k", 0, "")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if cmd.common.deadlineMs <= 0 {
		return nil, fmt.Errorf("--deadline-ms must be positive, got %d", cmd.common.deadlineMs)
	}
	if *model == "" {
		return nil, errors.New("--model is required")
	}
	entityIDs, err := parsePairs("--entity", entities)
	if err != nil {
		return nil, err
	}
	var pinned *int64
	if version.set {
		v, err := strconv.ParseInt(version.value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--version must be an integer, got %q", version.value)
		}
		pinned = &v
	}
	var aliasPtr *string
	if alias.set {
		aliasPtr = &alias.value
	}
	wrong := map[string][]string{
		"score":     {"context-item", "exclude", "k"},
		"recommend": {"context-json", "feature"},
	}
	for _, name := range wrong[sub] {
		if given[name] {
			return nil, fmt.Errorf("--%s is not a flag of %s", name, sub)
		}
	}

	if sub == "score" {
		ctx, err := parseContext(*contextJSON)
		if err != nil {
			return nil, err
		}
		numbers, err := parseFeatures(features)
		if err != nil {
			return nil, err
		}
		cmd.score = &inferencev1.ScoreRequest{
			RequestId: *requestID,
			Model:     *model,
			Alias:     aliasPtr,
			Version:   pinned,
			EntityIds: entityIDs,
			Features:  numbers,
			Context:   ctx,
		}
		return cmd, nil
	}
	if *k < 0 || *k > math.MaxInt32 {
		return nil, fmt.Errorf("--k must be in [0, %d], got %d", math.MaxInt32, *k)
	}
	cmd.recommend = &inferencev1.RecommendRequest{
		RequestId:    *requestID,
		Model:        *model,
		Alias:        aliasPtr,
		Version:      pinned,
		EntityIds:    entityIDs,
		ContextItems: contextItems,
		K:            int32(*k),
		ExcludeItems: exclude,
	}
	return cmd, nil
}

// parsePairs reads KEY=VALUE flag values (split at the first '='; the key must not be empty, the value may).
func parsePairs(flagName string, values []string) (map[string]string, error) {
	pairs := map[string]string{}
	for _, v := range values {
		key, value, ok := strings.Cut(v, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%s must be TYPE=ID, got %q", flagName, v)
		}
		pairs[key] = value
	}
	return pairs, nil
}

// parseFeatures reads --feature NAME=NUMBER values into ScoreRequest.features.
func parseFeatures(values []string) (map[string]float64, error) {
	pairs, err := parsePairs("--feature", values)
	if err != nil {
		return nil, err
	}
	numbers := map[string]float64{}
	for name, text := range pairs {
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("--feature %s: %q is not a number", name, text)
		}
		numbers[name] = v
	}
	return numbers, nil
}

// parseContext turns a JSON object into ScoreRequest.context: a number becomes double_value, a string
// string_value (an RFC 3339 timestamp stays a string), a boolean bool_value, null a Value with no kind,
// and an array of such scalars a list_value. Anything else (objects, nested arrays) is refused, naming the key.
func parseContext(text string) (map[string]*commonv1.Value, error) {
	if text == "" {
		return nil, nil
	}
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.UseNumber()
	var object map[string]any
	if err := decoder.Decode(&object); err != nil || object == nil {
		return nil, fmt.Errorf("--context-json must be a JSON object: %v", err)
	}
	if decoder.More() {
		return nil, errors.New("--context-json must be a single JSON object")
	}
	keys := make([]string, 0, len(object))
	for key := range object {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	values := map[string]*commonv1.Value{}
	for _, key := range keys {
		value, err := toValue(object[key], true)
		if err != nil {
			return nil, fmt.Errorf("--context-json %q: %v", key, err)
		}
		values[key] = value
	}
	return values, nil
}

func toValue(v any, allowList bool) (*commonv1.Value, error) {
	switch x := v.(type) {
	case nil:
		return &commonv1.Value{}, nil
	case json.Number:
		f, err := strconv.ParseFloat(x.String(), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a double", x)
		}
		return &commonv1.Value{Kind: &commonv1.Value_DoubleValue{DoubleValue: f}}, nil
	case string:
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: x}}, nil
	case bool:
		return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: x}}, nil
	case []any:
		if !allowList {
			return nil, errors.New("lists do not nest")
		}
		list := &commonv1.ValueList{}
		for _, element := range x {
			value, err := toValue(element, false)
			if err != nil {
				return nil, err
			}
			list.Values = append(list.Values, value)
		}
		return &commonv1.Value{Kind: &commonv1.Value_ListValue{ListValue: list}}, nil
	default:
		return nil, errors.New("must be a number, string, boolean, null or a list of them")
	}
}
