package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// bearer sends "authorization: Bearer <token>" on every call, as aimesh's Python clients do with
// $AIMESH_AUTH_TOKEN_FILE. It is allowed over plaintext: the local stack serves without TLS.
type bearer struct{ token string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// readToken reads a token file, surrounding whitespace stripped; an empty file is an error.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %v", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("--token-file %s is empty", path)
	}
	return token, nil
}
