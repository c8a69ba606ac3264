// Command kstatus prints the kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status)
// verdict on one Kubernetes object read from standard input as JSON or YAML,
// the way Flux, kpt, Helm's waiter and kubectl plugins judge it. It exists so
// that the tests check the Tenant's status with the library itself, not with a
// reimplementation of its rules.
//
// Output, on standard output, is one JSON object:
//
//	{"status":"Current","message":"Resource is current","conditions":[...]}
//
// Exit codes: 0 when a status was computed (whatever it is), 1 when the input
// is not a single object the library can read, 2 on bad usage.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// maxInput bounds what is read: a Tenant is a few kilobytes.
const maxInput = 4 << 20

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

type verdict struct {
	Status     string      `json:"status"`
	Message    string      `json:"message"`
	Conditions []condition `json:"conditions"`
}

func compute(input []byte) (*verdict, error) {
	if len(input) > maxInput {
		return nil, fmt.Errorf("input is larger than %d bytes", maxInput)
	}
	// YAML becomes JSON (JSON passes through as the YAML subset it is); the
	// unstructured decoder then keeps integers as int64, as the library expects.
	encoded, err := yaml.YAMLToJSON(input)
	if err != nil {
		return nil, fmt.Errorf("input is not JSON or YAML: %w", err)
	}
	if len(encoded) == 0 || string(encoded) == "null" {
		return nil, errors.New("input is empty")
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(encoded); err != nil {
		return nil, fmt.Errorf("input is not a Kubernetes object: %w", err)
	}
	if u.IsList() {
		return nil, errors.New("input is a list; give one object")
	}
	result, err := status.Compute(u)
	if err != nil {
		return nil, err
	}
	out := &verdict{Status: result.Status.String(), Message: result.Message, Conditions: []condition{}}
	for _, c := range result.Conditions {
		out.Conditions = append(out.Conditions, condition{
			Type: c.Type.String(), Status: string(c.Status), Reason: c.Reason, Message: c.Message,
		})
	}
	return out, nil
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < object.(json|yaml)")
		os.Exit(2)
	}
	input, err := io.ReadAll(io.LimitReader(os.Stdin, maxInput+1))
	if err == nil {
		var out *verdict
		if out, err = compute(input); err == nil {
			encoded, _ := json.Marshal(out)
			fmt.Println(string(encoded))
			return
		}
	}
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
