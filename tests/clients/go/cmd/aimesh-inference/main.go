// Command aimesh-inference calls aimesh's InferenceService (Score or Recommend) once and prints the
// answer as one JSON line on stdout: a retail backend's view of the inference API from Go, with code
// generated from this repository's proto/ tree (tests/clients/go/gen, `make proto-go`).
//
// Usage:
//
//	aimesh-inference score     [common flags] [--context-json OBJECT] [--feature NAME=NUMBER ...]
//	aimesh-inference recommend [common flags] [--context-item ID ...] [--k N] [--exclude ID ...]
//
// Common flags: --target host:port (default 127.0.0.1:50054), --token-file PATH (bearer token sent as
// "authorization: Bearer <token>"), --deadline-ms N (default 2000), --model NAME (required),
// --alias NAME, --version N, --request-id ID, --entity TYPE=ID (repeatable).
//
// Exit status: 0 when the call answered OK, 1 when it failed with a gRPC status (the JSON line says
// which), 2 for bad flags (usage on stderr, no call made). See tests/clients/go/README.md for the
// output format.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	inferencev1 "github.com/aimesh/aimesh/tests/clients/go/gen/aimesh/api/inference/v1"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, makes the one call and writes its JSON line to stdout; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "aimesh-inference: %v\n%s", err, usage)
		return 2
	}
	var opts []grpc.DialOption
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if cmd.common.tokenFile != "" {
		token, err := readToken(cmd.common.tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "aimesh-inference: %v\n", err)
			return 2
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token}))
	}
	conn, err := grpc.NewClient(cmd.common.target, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "aimesh-inference: --target %q: %v\n", cmd.common.target, err)
		return 2
	}
	defer conn.Close()
	stub := inferencev1.NewInferenceServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cmd.common.deadlineMs)*time.Millisecond)
	defer cancel()
	started := time.Now()
	var line any
	switch {
	case cmd.score != nil:
		var reply *inferencev1.ScoreResponse
		reply, err = stub.Score(ctx, cmd.score)
		if err == nil {
			line = scoreLine(reply, time.Since(started))
		}
	case cmd.recommend != nil:
		var reply *inferencev1.RecommendResponse
		reply, err = stub.Recommend(ctx, cmd.recommend)
		if err == nil {
			line = recommendLine(reply, time.Since(started))
		}
	}
	status := 0
	if err != nil {
		line = failedLine(err, time.Since(started))
		status = 1
	}
	if err := writeLine(stdout, line); err != nil {
		fmt.Fprintf(stderr, "aimesh-inference: writing the answer: %v\n", err)
		return 1
	}
	return status
}
