package mototest

import (
	"encoding/json"
	"strings"
	"testing"
)

// The server answers the AWS CLI: an instance run through it is listed.
func TestStart(t *testing.T) {
	s := Start(t)
	out := s.AWS(t, "ec2", "describe-images", "--query", "Images[0].ImageId")
	var ami string
	if err := json.Unmarshal([]byte(out), &ami); err != nil || !strings.HasPrefix(ami, "ami-") {
		t.Fatalf("describe-images: %q (%v)", out, err)
	}
	s.AWS(t, "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro")
	out = s.AWS(t, "ec2", "describe-instances", "--query", "length(Reservations[].Instances[])")
	if strings.TrimSpace(out) != "1" {
		t.Fatalf("describe-instances counts %s instances, want 1", out)
	}
}
