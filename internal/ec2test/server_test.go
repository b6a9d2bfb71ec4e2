package ec2test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// start runs a server with opts for the test, and a Go SDK client for it;
// each of before changes the server before it starts.
func start(t *testing.T, opts Options, before ...func(*Server)) (*Server, *ec2.Client) {
	t.Helper()
	srv := New(opts)
	for _, f := range before {
		f(srv)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	client := ec2.New(ec2.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		BaseEndpoint: aws.String(srv.URL()),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 10 * time.Millisecond
		}),
	})
	return srv, client
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func runInput(token string, tags ...string) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{
		ImageId: aws.String("ami-12345678"), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String(token),
	}
	if len(tags) > 0 {
		spec := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
		for i := 0; i+1 < len(tags); i += 2 {
			spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
		}
		in.TagSpecifications = []types.TagSpecification{spec}
	}
	return in
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// poll waits until cond holds, failing the test after a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateOf(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out.Reservations[0].Instances[0].State.Name)
}

func TestLifecycle(t *testing.T) {
	srv, c := start(t, Options{BootDelay: 50 * time.Millisecond, TerminateDelay: 50 * time.Millisecond})
	out, err := c.RunInstances(ctx(t), runInput("tok-1", "Name", "web-1", "cluster", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	in := out.Instances[0]
	if in.State.Name != types.InstanceStateNamePending || *in.State.Code != 0 {
		t.Errorf("new instance state = %v %d, want pending 0", in.State.Name, *in.State.Code)
	}
	if aws.ToString(in.PublicIpAddress) != "127.0.0.1" || aws.ToString(in.ClientToken) != "tok-1" {
		t.Errorf("public IP %q token %q, want 127.0.0.1 tok-1", aws.ToString(in.PublicIpAddress), aws.ToString(in.ClientToken))
	}
	if in.LaunchTime == nil || time.Since(*in.LaunchTime) > time.Minute {
		t.Errorf("launch time %v, want about now", in.LaunchTime)
	}
	if len(in.Tags) != 2 || *in.Tags[0].Key != "Name" || *in.Tags[1].Value != "c1" {
		t.Errorf("tags = %+v", in.Tags)
	}
	id := *in.InstanceId
	// The SDK's own waiter is the witness that "running" looks right.
	w := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := w.Wait(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	term, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	ch := term.TerminatingInstances[0]
	if ch.CurrentState.Name != types.InstanceStateNameShuttingDown || *ch.PreviousState.Code != 16 {
		t.Errorf("terminate: %v from %v, want shutting-down from running", ch.CurrentState.Name, ch.PreviousState.Name)
	}
	poll(t, "terminated", func() bool { return stateOf(t, c, id) == "terminated" })
	if got, _ := srv.Instance(id); got.PublicIP != "" {
		t.Errorf("a terminated instance kept its address %s", got.PublicIP)
	}
	// Terminating again is idempotent.
	term, err = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil || term.TerminatingInstances[0].CurrentState.Name != "terminated" || *term.TerminatingInstances[0].PreviousState.Code != 48 {
		t.Errorf("second terminate: %v %+v", err, term)
	}
}

func TestStopStart(t *testing.T) {
	_, c := start(t, Options{})
	out, err := c.RunInstances(ctx(t), runInput("t"))
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Instances[0].InstanceId
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	poll(t, "stopped", func() bool { return stateOf(t, c, id) == "stopped" })
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, c, id); s != "running" {
		t.Errorf("started: %s, want running", s)
	}
}

func TestIdempotency(t *testing.T) {
	srv, c := start(t, Options{})
	a, err := c.RunInstances(ctx(t), runInput("tok-same", "k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RunInstances(ctx(t), runInput("tok-same", "k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	if *a.ReservationId != *b.ReservationId || *a.Instances[0].InstanceId != *b.Instances[0].InstanceId {
		t.Errorf("same token, same params: %s/%s then %s/%s", *a.ReservationId, *a.Instances[0].InstanceId, *b.ReservationId, *b.Instances[0].InstanceId)
	}
	if n := len(srv.Instances()); n != 1 {
		t.Errorf("%d instances launched, want 1", n)
	}
	_, err = c.RunInstances(ctx(t), runInput("tok-same", "k", "other"))
	if apiCode(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other params: %v", err)
	}
	// After termination the token still names the old reservation.
	srv.Terminate(*a.Instances[0].InstanceId)
	b, err = c.RunInstances(ctx(t), runInput("tok-same", "k", "v"))
	if err != nil || *b.Instances[0].InstanceId != *a.Instances[0].InstanceId {
		t.Errorf("after termination: %v, %+v", err, b)
	}
	_, err = c.RunInstances(ctx(t), runInput(strings.Repeat("x", 65)))
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("65-char token: %v, want InvalidParameterValue", err)
	}
	if _, err = c.RunInstances(ctx(t), runInput(strings.Repeat("x", 64))); err != nil {
		t.Errorf("64-char token: %v", err)
	}
}

func TestFilters(t *testing.T) {
	srv, c := start(t, Options{})
	var ids []string
	for _, tags := range [][]string{{"cloudspeak:pool", "web", "Name", "a"}, {"cloudspeak:pool", "db"}, {"cloudspeak:pool", "web"}, {}} {
		out, err := c.RunInstances(ctx(t), runInput(newUUID(), tags...))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.Instances[0].InstanceId)
	}
	srv.Terminate(ids[2])
	filter := func(kv ...string) []types.Filter {
		var fs []types.Filter
		for i := 0; i+1 < len(kv); i += 2 {
			fs = append(fs, types.Filter{Name: aws.String(kv[i]), Values: strings.Split(kv[i+1], ",")})
		}
		return fs
	}
	tests := []struct {
		filters []types.Filter
		want    []int
	}{
		{filter("tag:cloudspeak:pool", "web"), []int{0, 2}},
		{filter("tag:cloudspeak:pool", "web,db"), []int{0, 1, 2}},
		{filter("tag:cloudspeak:pool", "w*"), []int{0, 2}},
		{filter("tag:cloudspeak:pool", "web", "instance-state-name", "pending,running"), []int{0}},
		{filter("tag-key", "cloudspeak:pool"), []int{0, 1, 2}},
		{filter("tag-key", "Name"), []int{0}},
		{filter("instance-state-name", "terminated"), []int{2}},
		{filter("instance-id", ids[3]), []int{3}},
		{filter("tag:nope", "x"), nil},
	}
	for _, tt := range tests {
		out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: tt.filters})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				for i, id := range ids {
					if id == *in.InstanceId {
						got = append(got, i)
					}
				}
			}
		}
		if !equal(got, tt.want) {
			t.Errorf("filters %v: got %v, want %v", describe(tt.filters), got, tt.want)
		}
	}
	// By client token, as the ec2 provider finds a launch it lost.
	tok := srv.Instances()[1].ClientToken
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: filter("client-token", tok)})
	if err != nil || len(out.Reservations) != 1 || *out.Reservations[0].Instances[0].InstanceId != ids[1] {
		t.Errorf("client-token filter: %v %+v", err, out)
	}
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: filter("colour", "red")})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v", err)
	}
}

func describe(fs []types.Filter) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, *f.Name+"="+strings.Join(f.Values, ","))
	}
	return strings.Join(parts, " ")
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPaging(t *testing.T) {
	_, c := start(t, Options{})
	var want []string
	for range 12 {
		out, err := c.RunInstances(ctx(t), runInput(newUUID()))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, *out.Instances[0].InstanceId)
	}
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var got []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				got = append(got, *in.InstanceId)
			}
		}
	}
	if pages != 3 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%d pages %v, want 3 pages %v", pages, got, want)
	}
	_, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), InstanceIds: want[:1]})
	if apiCode(err) != "InvalidParameterCombination" {
		t.Errorf("MaxResults with InstanceIds: %v", err)
	}
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{NextToken: aws.String("bogus")})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("bad NextToken: %v", err)
	}
}

func TestErrors(t *testing.T) {
	srv, c := start(t, Options{Capacity: 1, AccessKeyID: "AKIDTEST", Images: []string{"ami-12345678"}})
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"missing instance", func() error {
			_, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"malformed instance id", func() error {
			_, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{"web-1"}})
			return err
		}, "InvalidInstanceID.Malformed"},
		{"malformed AMI", func() error {
			in := runInput("a")
			in.ImageId = aws.String("ubuntu")
			_, err := c.RunInstances(ctx(t), in)
			return err
		}, "InvalidAMIID.Malformed"},
		{"unknown AMI", func() error {
			in := runInput("b")
			in.ImageId = aws.String("ami-87654321")
			_, err := c.RunInstances(ctx(t), in)
			return err
		}, "InvalidAMIID.NotFound"},
		{"bad type", func() error {
			in := runInput("c")
			in.InstanceType = "huge"
			_, err := c.RunInstances(ctx(t), in)
			return err
		}, "InvalidParameterValue"},
		{"bad user data", func() error {
			in := runInput("d")
			in.UserData = aws.String("#!/bin/sh")
			_, err := c.RunInstances(ctx(t), in)
			return err
		}, "InvalidParameterValue"},
		{"capacity", func() error {
			if _, err := c.RunInstances(ctx(t), runInput("e")); err != nil {
				return err
			}
			_, err := c.RunInstances(ctx(t), runInput("f"))
			return err
		}, "InsufficientInstanceCapacity"},
		{"unknown EIP", func() error {
			_, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-nope"), InstanceId: aws.String("i-1")})
			return err
		}, "InvalidAllocationID.NotFound"},
		{"wrong key", func() error {
			other := ec2.New(c.Options(), func(o *ec2.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider("AKIDOTHER", "x", "")
			})
			_, err := other.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
			return err
		}, "AuthFailure"},
	}
	for _, tt := range tests {
		if err := tt.call(); apiCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	// A capacity error is a 400 by default: one attempt.
	if n := srv.Count("RunInstances"); n != 6 {
		t.Errorf("%d RunInstances requests, want 6 (no retries of 400s)", n)
	}

	req, _ := http.NewRequest("POST", srv.URL(), strings.NewReader(url.Values{"Action": {"FlyToMoon"}, "Version": {"2016-11-15"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "<Code>InvalidAction</Code>") || !strings.Contains(string(body), "<RequestID>") {
		t.Errorf("unknown action: %d %s", resp.StatusCode, body)
	}
}

func TestFaults(t *testing.T) {
	srv, c := start(t, Options{})
	srv.FailNext("RunInstances", "RequestLimitExceeded", 503, 2)
	out, err := c.RunInstances(ctx(t), runInput("tok-retry"))
	if err != nil {
		t.Fatalf("two throttles then success: %v", err)
	}
	var attempts []int
	for _, r := range srv.Requests() {
		if r.Action != "RunInstances" || r.ClientToken != "tok-retry" {
			t.Errorf("request %+v, want RunInstances with tok-retry", r)
		}
		attempts = append(attempts, r.Attempt)
	}
	if !equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", attempts)
	}
	if n := len(srv.Instances()); n != 1 || srv.Instances()[0].ID != *out.Instances[0].InstanceId {
		t.Errorf("%d instances after retries, want the one returned", n)
	}

	// A lost reply: the launch happened, the SDK retries with the same
	// token and gets it.
	srv.LoseReply("RunInstances", 1)
	lost, err := c.RunInstances(ctx(t), runInput("tok-lost"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Instances()); n != 2 || srv.Instances()[1].ID != *lost.Instances[0].InstanceId {
		t.Errorf("%d instances after a lost reply, want 2 (one per token)", n)
	}

	srv.Deny("TerminateInstances")
	_, err = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{*out.Instances[0].InstanceId}})
	if apiCode(err) != "UnauthorizedOperation" {
		t.Errorf("denied: %v", err)
	}
	srv.Allow("TerminateInstances")
	if _, err = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{*out.Instances[0].InstanceId}}); err != nil {
		t.Errorf("allowed again: %v", err)
	}
}

func TestAssociateAddress(t *testing.T) {
	srv, c := start(t, Options{Addresses: map[string]string{"eipalloc-1": "127.0.0.1"}})
	var ids []string
	for range 2 {
		out, err := c.RunInstances(ctx(t), runInput(newUUID()))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.Instances[0].InstanceId)
	}
	assoc := func(id string, allow bool) error {
		_, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{
			AllocationId: aws.String("eipalloc-1"), InstanceId: aws.String(id), AllowReassociation: aws.Bool(allow)})
		return err
	}
	if err := assoc(ids[0], false); err != nil {
		t.Fatal(err)
	}
	if err := assoc(ids[1], false); apiCode(err) != "Resource.AlreadyAssociated" {
		t.Errorf("reassociation not allowed: %v", err)
	}
	if err := assoc(ids[1], true); err != nil {
		t.Fatal(err)
	}
	if at, _ := srv.Address("eipalloc-1"); at != ids[1] {
		t.Errorf("EIP at %s, want %s", at, ids[1])
	}
	out, err := c.DescribeAddresses(ctx(t), &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-1"}})
	if err != nil || len(out.Addresses) != 1 || aws.ToString(out.Addresses[0].InstanceId) != ids[1] || *out.Addresses[0].PublicIp != "127.0.0.1" {
		t.Errorf("DescribeAddresses: %v %+v", err, out)
	}
	// By public IP, as `elastic_ip 127.0.0.1` would.
	if _, err := c.AssociateAddress(ctx(t), &ec2.AssociateAddressInput{PublicIp: aws.String("127.0.0.1"), InstanceId: aws.String(ids[0]), AllowReassociation: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	srv.Terminate(ids[0])
	if at, _ := srv.Address("eipalloc-1"); at != "" {
		t.Errorf("EIP still at terminated %s", at)
	}
}

func TestStartOnlyLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0", "[::1]:0"} {
		if err := New(Options{}).Start(addr); err == nil {
			t.Errorf("Start(%q) succeeded; only 127.0.0.1 is allowed", addr)
		}
	}
}
