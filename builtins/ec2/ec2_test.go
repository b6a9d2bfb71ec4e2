package ec2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// secret is the secret access key every test runs with: no error or log
// line may ever contain it.
const secret = "SECRET-c10udspeak-must-never-leak-7f3a"

const accessKey = "AKIDCLOUDSPEAKTEST"

// env gives the AWS chain a known, isolated environment: static keys, a
// region, no shared files, no endpoint, no instance metadata.
func env(t *testing.T) {
	t.Helper()
	home := t.TempDir()
	set := map[string]string{
		"AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
		"HOME": home, "AWS_CONFIG_FILE": filepath.Join(home, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_EC2", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_DEFAULT_PROFILE"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
}

// logs collects a provider's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type fixture struct {
	srv   *ec2test.Server
	p     *Provider
	logs  *logs
	spec  Spec
	state string // StateDir
}

// setup runs a test server with sopts and a provider for pool "web" on it.
func setup(t *testing.T, sopts ec2test.Options) *fixture {
	t.Helper()
	env(t)
	if sopts.AccessKeyID == "" {
		sopts.AccessKeyID = accessKey
	}
	srv := ec2test.New(sopts)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, logs: &logs{}, state: t.TempDir(),
		spec: Spec{Image: "ami-12345678", Type: "t3.micro", Endpoint: srv.URL(), Port: 8080}}
	f.p = f.provider(t, f.state)
	if err := f.p.SetSpec("web", f.spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.checkNoSecret(t) })
	return f
}

func (f *fixture) provider(t *testing.T, stateDir string) *Provider {
	p := New(Options{StateDir: stateDir, Log: f.logs.logf, WaiterMinDelay: 10 * time.Millisecond,
		WaiterMaxDelay: 50 * time.Millisecond, RetryMaxBackoff: 5 * time.Millisecond, CallTimeout: 10 * time.Second})
	t.Cleanup(p.Close)
	return p
}

func (f *fixture) checkNoSecret(t *testing.T) {
	if strings.Contains(f.logs.String(), secret) {
		t.Errorf("the secret key is in the log:\n%s", f.logs)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// poll waits until cond holds, failing the test after a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) list(t *testing.T, pool string) []runtime.Instance {
	t.Helper()
	ins, err := f.p.List(ctx(t), pool)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func (f *fixture) start(t *testing.T, name string) runtime.Instance {
	t.Helper()
	in, err := f.p.Start(ctx(t), "web", name)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestStartToRunning(t *testing.T) {
	// The server knows only the subnets it is given; RunInstances with
	// another fails as on EC2.
	f := setup(t, ec2test.Options{BootDelay: 150 * time.Millisecond, Subnets: map[string]string{"subnet-1": "us-east-1a"}})
	spec := f.spec
	spec.KeyPair, spec.Subnets, spec.SecurityGroup = "k1", []string{"subnet-1"}, "sg-1"
	spec.UserData = "#!/bin/sh\necho hello\n"
	spec.Tags = map[string]string{"team": "payments", "cloudspeak:pool": "not-this"}
	if err := f.p.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	in := f.start(t, "node0")
	if in.State != runtime.Starting || in.ID == "" || in.Name != "node0" || in.Pool != "web" || in.Addr != "127.0.0.1:8080" || in.Role != runtime.Serving {
		t.Errorf("Start = %+v, want node0 of web Starting at 127.0.0.1:8080", in)
	}
	got, _ := f.srv.Instance(in.ID)
	wantTags := map[string]string{"cloudspeak:pool": "web", "cloudspeak:name": "node0", "cloudspeak:role": "serving", "team": "payments"}
	if fmt.Sprint(got.Tags) != fmt.Sprint(wantTags) {
		t.Errorf("tags %v, want %v", got.Tags, wantTags)
	}
	ud, _ := base64.StdEncoding.DecodeString(got.UserData)
	if string(ud) != spec.UserData || got.Type != "t3.micro" || got.KeyName != "k1" || got.Subnet != "subnet-1" ||
		fmt.Sprint(got.SecurityGroups) != "[sg-1]" || got.Image != "ami-12345678" {
		t.Errorf("launched %+v (user data %q)", got, ud)
	}
	if tok := clientToken("web", "node0", 0); got.ClientToken != tok || len(tok) > 64 || !strings.HasPrefix(tok, "cs-") {
		t.Errorf("client token %q, want %q (≤64 chars)", got.ClientToken, tok)
	}
	if ins := f.list(t, "web"); len(ins) != 1 || ins[0].State != runtime.Starting {
		t.Errorf("listed at once: %+v, want one Starting", ins)
	}
	poll(t, "node0 is Running", func() bool {
		ins := f.list(t, "web")
		return len(ins) == 1 && ins[0].State == runtime.Running
	})
	l := f.list(t, "web")[0]
	if !l.Started.Equal(got.Launched) || l.Name != "node0" || l.Addr != "127.0.0.1:8080" {
		t.Errorf("listed %+v, want node0 started %v", l, got.Launched)
	}
}

func TestListInLaunchOrderAndAddr(t *testing.T) {
	f := setup(t, ec2test.Options{NoPublicIP: true})
	spec := f.spec
	spec.Port = 0
	f.p.SetSpec("web", spec)
	for _, name := range []string{"node2", "node0", "node3", "node1"} {
		f.start(t, name)
	}
	f.srv.AddInstance(map[string]string{"cloudspeak:pool": "db", "cloudspeak:name": "node0"})
	var names []string
	for _, in := range f.list(t, "web") {
		names = append(names, in.Name)
		if in.Addr != "127.0.0.1" { // the private address, without a port
			t.Errorf("%s: Addr %q, want 127.0.0.1", in.Name, in.Addr)
		}
	}
	if strings.Join(names, " ") != "node2 node0 node3 node1" {
		t.Errorf("listed %v, want launch order [node2 node0 node3 node1]", names)
	}
}

func TestStopAndKillTerminate(t *testing.T) {
	f := setup(t, ec2test.Options{TerminateDelay: 100 * time.Millisecond})
	a, b := f.start(t, "node0"), f.start(t, "node1")
	if err := f.p.Stop(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Kill(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	ins := f.list(t, "web")
	if len(ins) != 2 || ins[0].State != runtime.Stopping || ins[1].State != runtime.Stopping {
		t.Errorf("after Stop and Kill: %+v, want both Stopping", ins)
	}
	poll(t, "both are terminated and no longer listed", func() bool { return len(f.list(t, "web")) == 0 })
	for _, id := range []string{a.ID, b.ID} {
		if got, _ := f.srv.Instance(id); got.State != "terminated" {
			t.Errorf("%s is %s, want terminated", id, got.State)
		}
	}
	// Stopping one already gone is no error.
	if err := f.p.Stop(ctx(t), a); err != nil {
		t.Errorf("Stop again: %v", err)
	}
	// The slots moved on: a new launch, not the old instance.
	if c := f.start(t, "node0"); c.ID == a.ID {
		t.Errorf("node0 relaunched as the terminated %s", a.ID)
	}
	fi, err := os.Stat(filepath.Join(f.state, generationsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", generationsFile, fi.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(f.state, generationsFile))
	var gens map[string]map[string]int
	if err := json.Unmarshal(data, &gens); err != nil || gens["web"]["node0"] != 2 || gens["web"]["node1"] != 1 {
		t.Errorf("generations %s (%v), want node0 2 (stopped twice), node1 1", data, err)
	}
}

// A crash between EC2 accepting a launch and the daemon recording it must
// not launch the slot twice: the SDK's retry of a lost reply, and a new
// daemon (a second Provider on the same StateDir) starting the same slot,
// both get the first instance.
func TestStartIdempotentAcrossCrash(t *testing.T) {
	f := setup(t, ec2test.Options{BootDelay: 50 * time.Millisecond})
	f.srv.LoseReply("RunInstances", 1)
	first := f.start(t, "node3")
	second := f.provider(t, f.state)
	if err := second.SetSpec("web", f.spec); err != nil {
		t.Fatal(err)
	}
	again, err := second.Start(ctx(t), "web", "node3")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID {
		t.Errorf("the restarted daemon got %s, want the first launch's %s", again.ID, first.ID)
	}
	if n := len(f.srv.Instances()); n != 1 {
		t.Errorf("%d instances launched, want 1", n)
	}
	var tokens []string
	for _, r := range f.srv.Requests() {
		if r.Action == "RunInstances" {
			tokens = append(tokens, r.ClientToken)
		}
	}
	tok := clientToken("web", "node3", 0)
	if strings.Join(tokens, " ") != strings.Join([]string{tok, tok, tok}, " ") {
		t.Errorf("RunInstances tokens %v, want %s three times (lost reply, retry, restart)", tokens, tok)
	}
}

// A slot whose generation was lost (a fresh StateDir) after its instance
// was terminated launches anew instead of getting the terminated one back.
func TestStartAfterGenerationsLost(t *testing.T) {
	f := setup(t, ec2test.Options{})
	old := f.start(t, "node0")
	if err := f.p.Stop(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	fresh := f.provider(t, t.TempDir())
	if err := fresh.SetSpec("web", f.spec); err != nil {
		t.Fatal(err)
	}
	in, err := fresh.Start(ctx(t), "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID == old.ID || in.State != runtime.Starting {
		t.Errorf("got %+v, want a new instance (not the terminated %s)", in, old.ID)
	}
	if g, _ := fresh.gens.Get(context.Background(), "web", "node0"); g != 1 {
		t.Errorf("generation %d after relaunch, want 1", g)
	}
	if !strings.Contains(f.logs.String(), "launching anew") {
		t.Errorf("log does not say why it relaunched:\n%s", f.logs)
	}
}

// A launch under the slot's token with other settings (a reload between a
// crash and the restart) adopts the instance that launch made.
func TestStartAfterSettingsChanged(t *testing.T) {
	f := setup(t, ec2test.Options{})
	first := f.start(t, "node0")
	spec := f.spec
	spec.Type = "t3.large"
	restarted := f.provider(t, t.TempDir())
	if err := restarted.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	in, err := restarted.Start(ctx(t), "web", "node0")
	if err != nil || in.ID != first.ID {
		t.Errorf("Start with changed settings: %+v, %v; want the slot's %s", in, err, first.ID)
	}
	reqs := f.srv.Requests()
	if r := reqs[len(reqs)-2]; r.Action != "RunInstances" || r.Status != 400 {
		t.Errorf("the relaunch was %s → %d, want RunInstances refused (IdempotentParameterMismatch)", r.Action, r.Status)
	}
	if n := len(f.srv.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func TestThrottlingRetried(t *testing.T) {
	f := setup(t, ec2test.Options{})
	f.srv.FailNext("RunInstances", "RequestLimitExceeded", 503, 2)
	in := f.start(t, "node0")
	var attempts []int
	for _, r := range f.srv.Requests() {
		if r.Action != "RunInstances" {
			continue
		}
		if r.ClientToken != clientToken("web", "node0", 0) {
			t.Errorf("attempt %d used token %q", r.Attempt, r.ClientToken)
		}
		attempts = append(attempts, r.Attempt)
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("RunInstances attempts %v, want [1 2 3]", attempts)
	}
	if n := len(f.srv.Instances()); n != 1 || f.srv.Instances()[0].ID != in.ID {
		t.Errorf("%d instances, want the one Start returned", n)
	}
	// Past the retryer's patience it is an error that says so.
	f.srv.FailNext("DescribeInstances", "RequestLimitExceeded", 503, 3)
	_, err := f.p.List(ctx(t), "web")
	var e *Error
	if !errors.As(err, &e) || e.Code != "RequestLimitExceeded" || !strings.Contains(e.Message, "gave up after 3 attempts") {
		t.Errorf("List throttled 3 times: %v", err)
	}
}

func TestErrorsHaveCodeAndHint(t *testing.T) {
	f := setup(t, ec2test.Options{Capacity: 1})
	f.start(t, "node0")
	try := func(name string, spec Spec) error {
		t.Helper()
		if err := f.p.SetSpec("web", spec); err != nil {
			t.Fatal(err)
		}
		_, err := f.p.Start(ctx(t), "web", name)
		return err
	}
	badImage, badType := f.spec, f.spec
	badImage.Image = "ami-nope"
	badType.Type = "t3.enormous"
	tests := []struct {
		name, code, hint string
		err              func() error
	}{
		{"capacity", "InsufficientInstanceCapacity", "try another type or subnet/AZ, or wait", func() error { return try("node1", f.spec) }},
		{"bad image", "InvalidAMIID.Malformed", "check `image`", func() error { return try("node2", badImage) }},
		{"bad type", "InvalidParameterValue", "type", func() error { return try("node3", badType) }},
		{"denied", "UnauthorizedOperation", "AWS_PROFILE", func() error {
			f.srv.Deny("RunInstances")
			defer f.srv.Allow("RunInstances")
			return try("node4", f.spec)
		}},
		{"instance limit", "InstanceLimitExceeded", "quota", func() error {
			f.srv.FailNext("RunInstances", "InstanceLimitExceeded", 400, 1)
			return try("node5", f.spec)
		}},
		{"wrong key", "AuthFailure", "AWS_ACCESS_KEY_ID", func() error {
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSOMEONEELSE")
			p := f.provider(t, t.TempDir())
			if err := p.SetSpec("web", f.spec); err != nil {
				t.Fatal(err)
			}
			_, err := p.List(ctx(t), "web")
			return err
		}},
	}
	for _, tt := range tests {
		err := tt.err()
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: %v, want an *ec2.Error", tt.name, err)
			continue
		}
		if e.Code != tt.code || !strings.Contains(e.Hint, tt.hint) || e.Message == "" {
			t.Errorf("%s: code %q hint %q, want %s and a hint with %q", tt.name, e.Code, e.Hint, tt.code, tt.hint)
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), e.Hint} {
			if strings.Contains(text, secret) {
				t.Errorf("%s: the secret key is in the error: %s", tt.name, text)
			}
		}
	}
	// A capacity error comes as a 400: one attempt, no retries.
	n := 0
	for _, r := range f.srv.Requests() {
		if r.Action == "RunInstances" && r.ClientToken == clientToken("web", "node1", 0) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("node1's launch was sent %d times, want once", n)
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	f := setup(t, ec2test.Options{})
	t.Setenv("AWS_ENDPOINT_URL_EC2", f.srv.URL())
	p := f.provider(t, t.TempDir())
	spec := f.spec
	spec.Endpoint = "" // the chain's, from the environment
	if err := p.SetSpec("api", spec); err != nil {
		t.Fatal(err)
	}
	in, err := p.Start(ctx(t), "api", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.srv.Instance(in.ID); !ok || got.Tags["cloudspeak:pool"] != "api" {
		t.Errorf("the launch did not reach the server named by AWS_ENDPOINT_URL_EC2: %+v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	env(t)
	p := New(Options{})
	defer p.Close()
	if err := p.SetSpec("web", Spec{Region: "us-east-1"}); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("no image: %v", err)
	}
	os.Unsetenv("AWS_REGION")
	if err := p.SetSpec("web", Spec{Image: "ami-12345678"}); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("no region anywhere: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "missing.pem"))
	err := p.SetSpec("web", Spec{Image: "ami-12345678", Region: "eu-west-1"})
	if err == nil || !strings.Contains(err.Error(), "load the AWS configuration") || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("bad AWS_CA_BUNDLE: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the secret key is in the error: %v", err)
	}
}

func TestStrangersAndUntagged(t *testing.T) {
	f := setup(t, ec2test.Options{})
	ours := f.start(t, "node0")
	old := f.srv.AddInstance(map[string]string{"cloudspeak:pool": "legacy", "cloudspeak:name": "node7"})
	untagged := f.srv.AddInstance(nil)
	named := f.srv.AddInstance(map[string]string{"Name": "bastion"})

	strangers, err := f.p.Strangers(ctx(t), []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(strangers) != 1 || strangers[0].ID != old || strangers[0].Pool != "legacy" || strangers[0].Name != "node7" ||
		strangers[0].State != "running" || strangers[0].Region != "us-east-1" {
		t.Errorf("strangers %+v, want legacy's node7 %s", strangers, old)
	}
	if s, _ := f.p.Strangers(ctx(t), []string{"web", "legacy"}); len(s) != 0 {
		t.Errorf("strangers with legacy declared: %+v", s)
	}
	ins := f.list(t, "web")
	if len(ins) != 1 || ins[0].ID != ours.ID {
		t.Errorf("web lists %+v, want only %s", ins, ours.ID)
	}
	if err := f.p.Stop(ctx(t), ours); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.srv.Requests() {
		for _, id := range []string{old, untagged, named} {
			if r.Action != "DescribeInstances" && strings.Contains(fmt.Sprint(r.Params), id) {
				t.Errorf("%s was touched: %s %v", id, r.Action, r.Params)
			}
		}
	}
	for _, id := range []string{old, untagged, named} {
		if got, _ := f.srv.Instance(id); got.State != "running" {
			t.Errorf("%s is %s, want running", id, got.State)
		}
	}
}

func TestElasticIPMoves(t *testing.T) {
	f := setup(t, ec2test.Options{Addresses: map[string]string{"eipalloc-0abc": "127.0.0.1"}})
	spec := f.spec
	spec.ElasticIP = "eipalloc-0abc"
	f.p.SetSpec("web", spec)
	a, b := f.start(t, "node0"), f.start(t, "node1")
	if err := f.p.MoveAddress(ctx(t), "web", a); err != nil {
		t.Fatal(err)
	}
	if at, _ := f.srv.Address("eipalloc-0abc"); at != a.ID {
		t.Errorf("EIP at %q, want %s", at, a.ID)
	}
	var sw runtime.Switcher = f.p
	if err := sw.Switch(ctx(t), a, b); err != nil {
		t.Fatal(err)
	}
	if at, _ := f.srv.Address("eipalloc-0abc"); at != b.ID {
		t.Errorf("after Switch the EIP is at %q, want %s", at, b.ID)
	}
	// By its public IP, too.
	spec.ElasticIP = "127.0.0.1"
	f.p.SetSpec("web", spec)
	if err := f.p.Switch(ctx(t), b, a); err != nil {
		t.Fatal(err)
	}
	if at, _ := f.srv.Address("eipalloc-0abc"); at != a.ID {
		t.Errorf("moved by public IP: at %q, want %s", at, a.ID)
	}
	spec.ElasticIP = "eipalloc-missing"
	f.p.SetSpec("web", spec)
	var e *Error
	if err := f.p.Switch(ctx(t), a, b); !errors.As(err, &e) || e.Code != "InvalidAllocationID.NotFound" || !strings.Contains(e.Hint, "elastic_ip") {
		t.Errorf("unknown allocation: %v", err)
	}
}

func TestBootTimeoutFails(t *testing.T) {
	f := setup(t, ec2test.Options{BootDelay: time.Hour})
	spec := f.spec
	spec.BootTimeout = 300 * time.Millisecond
	f.p.SetSpec("web", spec)
	in := f.start(t, "node0")
	if ins := f.list(t, "web"); len(ins) != 1 || ins[0].State != runtime.Starting {
		t.Errorf("before the timeout: %+v, want Starting", ins)
	}
	poll(t, "node0 is Failed", func() bool {
		ins := f.list(t, "web")
		return len(ins) == 1 && ins[0].ID == in.ID && ins[0].State == runtime.Failed
	})
	if !strings.Contains(f.logs.String(), "failed to boot") {
		t.Errorf("the log does not say it failed to boot:\n%s", f.logs)
	}
}

// A restarted daemon adopts a pending instance and bounds its boot too.
func TestAdoptedPendingIsWatched(t *testing.T) {
	f := setup(t, ec2test.Options{BootDelay: time.Hour})
	spec := f.spec
	spec.BootTimeout = 300 * time.Millisecond
	f.p.SetSpec("web", spec)
	in := f.start(t, "node0")
	f.p.Close() // the crash
	restarted := f.provider(t, f.state)
	restarted.SetSpec("web", spec)
	poll(t, "the adopted node0 is Failed", func() bool {
		ins, err := restarted.List(ctx(t), "web")
		return err == nil && len(ins) == 1 && ins[0].ID == in.ID && ins[0].Name == "node0" && ins[0].State == runtime.Failed
	})
}

func TestAlive(t *testing.T) {
	f := setup(t, ec2test.Options{BootDelay: 200 * time.Millisecond})
	p := New(Options{StateDir: t.TempDir(), StateTTL: 20 * time.Millisecond, WaiterMinDelay: 10 * time.Millisecond})
	defer p.Close()
	p.SetSpec("web", f.spec)
	in := f.start(t, "node0")
	err := p.Alive(ctx(t), in)
	if err == nil || errors.Is(err, runtime.ErrGone) || !strings.Contains(err.Error(), "still booting") {
		t.Errorf("pending: %v, want a 'still booting' error, not gone", err)
	}
	poll(t, "Alive says running", func() bool { return p.Alive(ctx(t), in) == nil })
	f.srv.Terminate(in.ID)
	poll(t, "Alive says gone", func() bool { return errors.Is(p.Alive(ctx(t), in), runtime.ErrGone) })
	missing := in
	missing.ID = "i-00000000000000000"
	if err := p.Alive(ctx(t), missing); !errors.Is(err, runtime.ErrGone) {
		t.Errorf("unknown instance: %v, want gone", err)
	}
}

// The probes of a heartbeat round share one DescribeInstances.
func TestAliveSharesOneCall(t *testing.T) {
	f := setup(t, ec2test.Options{})
	var ins []runtime.Instance
	for i := range 5 {
		ins = append(ins, f.start(t, fmt.Sprintf("node%d", i)))
	}
	before := f.srv.Count("DescribeInstances")
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(ins))
	for range 4 {
		for _, in := range ins {
			wg.Go(func() { errs <- f.p.Alive(ctx(t), in) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := f.srv.Count("DescribeInstances") - before; n != 1 {
		t.Errorf("%d probes made %d DescribeInstances calls, want 1", 4*len(ins), n)
	}
	// One launched since that call is not taken for gone.
	late := f.start(t, "node9")
	if err := f.p.Alive(ctx(t), late); err != nil {
		t.Errorf("an instance launched after the cached call: %v", err)
	}
}
