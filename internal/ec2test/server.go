// Package ec2test is an EC2 Query-API server for tests: a real HTTP server
// on 127.0.0.1 that speaks the XML wire format the AWS SDK and the AWS CLI
// speak to EC2 (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/),
// for the actions a provider uses. Its instances go through EC2's
// lifecycle (pending → running → shutting-down → terminated) on timers,
// RunInstances honours ClientToken idempotency as EC2 documents it, and
// tests can inject faults (throttling, denied actions, no capacity) into
// any action, fail launches and instances with EC2's state reasons
// (reasons.go), and read back which requests arrived.
//
// Beyond instances it keeps subnets in availability zones (an instance is
// in its subnet's zone), EBS volumes (CreateVolume with idempotency,
// creating → available; AttachVolume only in the instance's zone,
// attaching → attached; DetachVolume, detaching → available, where a busy
// volume's unforced detach never ends, as on EC2; volumes made from
// RunInstances' block device mappings, released or deleted when their
// instance terminates), snapshots (pending → completed) and images
// (CreateImage, which reboots the instance unless NoReboot, pending →
// available, and launchable). Tags work on all of them. The behaviours
// Python's moto leaves out — zone mismatches, volumes in use, stuck
// detaches, reboots for images, the delays between states — are the ones
// a provider's error handling needs, so they are here.
//
// Its wire compatibility is witnessed by the AWS CLI (TestAWSCLIWitness):
// what the CLI and the Go SDK both accept is what EC2 sends. Nothing here
// is a cloud: every instance's address is 127.0.0.1 (Options.PublicIP).
//
// It knows nothing of the code under test: any client that speaks EC2's
// wire format is served alike.
package ec2test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options shape a server. The zero value is a server whose instances run at
// once and have the address 127.0.0.1.
type Options struct {
	// BootDelay is how long an instance stays pending; 0: running at once.
	BootDelay time.Duration
	// TerminateDelay is how long an instance stays shutting-down (and
	// stopping); 0: terminated at once after the TerminateInstances reply.
	TerminateDelay time.Duration
	// PublicIP is every instance's public (and private) address; default
	// 127.0.0.1. Tests never get another address to connect to.
	PublicIP string
	// NoPublicIP leaves instances with only a private address, as in a
	// subnet that does not assign public ones.
	NoPublicIP bool
	// Addresses are the Elastic IPs there are: allocation id → public IP.
	Addresses map[string]string
	// AccessKeyID, if set, is the only key id accepted: a request signed
	// with another (or unsigned) gets 401 AuthFailure.
	AccessKeyID string
	// Capacity, if > 0, is how many instances may be pending or running
	// at once; beyond it RunInstances fails with
	// InsufficientInstanceCapacity and CapacityStatus (default 400, so a
	// client makes one attempt; 500 makes the SDK retry it).
	Capacity       int
	CapacityStatus int
	// InstanceTypes, if set, are the only valid instance types; by default
	// any name shaped like "t3.micro" is.
	InstanceTypes []string
	// Images, if set, are the only AMIs that exist (others:
	// InvalidAMIID.NotFound); by default every well-formed AMI id does.
	Images []string
	// Region names the availability zones (REGIONa, b and c); default
	// us-east-1.
	Region string
	// Subnets are the subnets there are: subnet id → availability zone.
	// Default: DefaultSubnets(Region), one in each zone. An instance
	// launched without SubnetId goes to the first (by id) subnet of its
	// zone, as to a default VPC's default subnet.
	Subnets map[string]string

	// VolumeDelay is how long a new volume stays creating; 0: available
	// from the next request on (the CreateVolume reply says creating, as
	// EC2's does).
	VolumeDelay time.Duration
	// AttachDelay is how long an attachment stays attaching, DetachDelay
	// how long a detach stays detaching; 0: done by the next request.
	AttachDelay, DetachDelay time.Duration
	// BusyDetach makes every volume busy (see SetBusy): a detach without
	// Force never ends.
	BusyDetach bool
	// SnapshotDelay is how long a snapshot stays pending, ImageDelay how
	// long an image does; 0: done by the next request.
	SnapshotDelay, ImageDelay time.Duration
}

// Request is one request the server received, in the log Requests returns.
type Request struct {
	Action      string
	ClientToken string
	// Attempt is the SDK's attempt number (the amz-sdk-request header:
	// 1, then 2 for its first retry, …); 0 if the client sent none.
	Attempt int
	Params  url.Values // the form, without Action and Version
	Status  int        // the HTTP status of the reply
}

// Server is an EC2 Query-API server. It is safe for concurrent use.
type Server struct {
	opts Options

	mu           sync.Mutex
	now          func() time.Time
	instances    map[string]*instance
	order        []*instance             // in launch order
	reservations map[string]*reservation // by client token
	addresses    map[string]*address     // by allocation id
	faults       map[string][]fault      // by action
	lost         map[string]int          // by action: replies to lose after acting
	denied       map[string]bool         // actions that get UnauthorizedOperation
	requests     []Request
	lastLaunch   time.Time
	launchFails  []stateReason // the next launches' boot failures (FailLaunches)

	subnets      map[string]*subnet
	subnetOrder  []*subnet               // by id
	volumes      map[string]*volume      // live ones
	volumeOrder  []*volume               // live ones, in creation order
	volumeTokens map[string]*tokenVolume // by CreateVolume's client token, deleted ones too
	busy         map[string]bool         // by volume id; set by SetBusy, else Options.BusyDetach
	snapshots    map[string]*snapshot    // by id
	snapOrder    []*snapshot             // in creation order
	images       map[string]*image       // made here, by id
	imageOrder   []*image                // in creation order
	deregistered map[string]bool         // image ids made here and deregistered since
	reboots      map[string]int          // by instance id: CreateImage's reboots

	httpSrv *http.Server
	ln      net.Listener
	done    chan struct{}
}

type instance struct {
	id, reservation string
	image, typ      string
	keyName, subnet string
	zone            string
	groups          []string
	userData        string // base64, as sent
	clientToken     string
	launchIndex     int
	launched        time.Time
	state           string
	until           time.Time // when a transitional state (pending, stopping, shutting-down) ends
	publicIP        string    // "" when it has none (terminated, stopped, NoPublicIP)
	// reason is why it left pending or running (EC2's StateReason and
	// StateTransitionReason); bootFail, set for a launch that is to fail,
	// is the reason it will end with instead of running (reasons.go).
	reason   stateReason
	bootFail *stateReason
	tagged
}

type reservation struct {
	id        string
	params    string // canonical form of the request, for IdempotentParameterMismatch
	instances []*instance
}

type address struct {
	allocation, publicIP string
	instance, assoc      string
}

type fault struct {
	code   string
	status int
}

// New returns a server with opts; Start serves it.
func New(opts Options) *Server {
	if opts.PublicIP == "" {
		opts.PublicIP = "127.0.0.1"
	}
	if opts.CapacityStatus == 0 {
		opts.CapacityStatus = http.StatusBadRequest
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	s := &Server{
		opts: opts, now: time.Now,
		instances: map[string]*instance{}, reservations: map[string]*reservation{},
		addresses: map[string]*address{}, faults: map[string][]fault{}, lost: map[string]int{}, denied: map[string]bool{},
		volumes: map[string]*volume{}, volumeTokens: map[string]*tokenVolume{}, busy: map[string]bool{},
		snapshots: map[string]*snapshot{}, images: map[string]*image{}, deregistered: map[string]bool{}, reboots: map[string]int{},
	}
	s.initSubnets()
	for alloc, ip := range opts.Addresses {
		s.addresses[alloc] = &address{allocation: alloc, publicIP: ip}
	}
	return s
}

// Start listens on addr (default 127.0.0.1:0) and serves in the
// background until Close. Only 127.0.0.1 is accepted: a test server must
// not be reachable from elsewhere.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("ec2test: listen address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("ec2test: listen address %q: only 127.0.0.1 is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ec2test: %w", err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		s.httpSrv.Serve(ln)
	}()
	return nil
}

// URL is the server's endpoint, e.g. http://127.0.0.1:34567.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops the server at once, cutting any connection still open, and
// waits for its serving goroutine. (A graceful Shutdown would wait 5s for
// a connection a client opened but never used.)
func (s *Server) Close() {
	if s.httpSrv == nil {
		return
	}
	s.httpSrv.Close()
	<-s.done
}

// FailNext makes the next n requests of action fail with the error code
// and HTTP status (e.g. "RequestLimitExceeded", 503: the SDK retries it).
func (s *Server) FailNext(action, code string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[action] = append(s.faults[action], fault{code, status})
	}
}

// LoseReply makes the next n requests of action take effect and then fail
// with 500 InternalError, as when a reply is lost on the way back (or the
// caller times out): the SDK retries, and only idempotency (ClientToken)
// keeps RunInstances from launching twice.
func (s *Server) LoseReply(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost[action] += n
}

// Deny makes every request of action fail with 403 UnauthorizedOperation,
// as for a principal whose IAM policy lacks it; Allow undoes it.
func (s *Server) Deny(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[action] = true
}

// Allow undoes Deny.
func (s *Server) Allow(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denied, action)
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count is how many requests of action were received.
func (s *Server) Count(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Action == action {
			n++
		}
	}
	return n
}

// Instance is a snapshot of one instance, for tests to inspect.
type Instance struct {
	ID, ReservationID, ClientToken string
	State                          string
	Image, Type, KeyName, Subnet   string
	Zone                           string
	SecurityGroups                 []string
	UserData                       string // base64, as sent
	PublicIP                       string
	Launched                       time.Time
	Tags                           map[string]string
	// StateReason and StateMessage are EC2's StateReason (code and
	// message), Transition its StateTransitionReason: why it left pending
	// or running ("" while it has not).
	StateReason, StateMessage, Transition string
}

// Instances returns every instance, terminated ones too, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Instance, 0, len(s.order))
	for _, in := range s.order {
		out = append(out, in.snapshot())
	}
	return out
}

// Instance returns one instance's snapshot.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.snapshot(), true
}

func (in *instance) snapshot() Instance {
	return Instance{
		ID: in.id, ReservationID: in.reservation, ClientToken: in.clientToken, State: in.state,
		Image: in.image, Type: in.typ, KeyName: in.keyName, Subnet: in.subnet, Zone: in.zone,
		SecurityGroups: append([]string(nil), in.groups...), UserData: in.userData,
		PublicIP: in.publicIP, Launched: in.launched, Tags: in.tagMap(),
		StateReason: in.reason.code, StateMessage: in.reason.message, Transition: in.reason.transition,
	}
}

// AddInstance launches a running instance with tags directly, as another
// tool or a person in the console would: no request, no client token.
func (s *Server) AddInstance(tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	in := s.launch(launchParams{image: "ami-12345678", typ: "t3.micro"}, newID("r-"), 0)
	for _, k := range keys {
		in.setTag(k, tags[k])
	}
	in.state, in.until = "running", time.Time{}
	return in.id
}

// Terminate terminates instances directly, as if someone else had.
func (s *Server) Terminate(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	for _, id := range ids {
		if in, ok := s.instances[id]; ok {
			s.terminate(in, s.userShutdown())
		}
	}
}

// Address says which instance the Elastic IP with allocation id alloc is
// associated with ("" for none).
func (s *Server) Address(alloc string) (instanceID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.addresses[alloc]
	if !ok {
		return "", false
	}
	return a.instance, true
}

// ServeHTTP answers one Query-API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newUUID()
	if r.Method != http.MethodPost {
		writeError(w, http.StatusBadRequest, reqID, "InvalidAction", "The Query API takes POST requests with a form body.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, reqID, "MalformedQueryString", "The request body is not a form: "+err.Error())
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	params := url.Values{}
	for k, v := range form {
		if k != "Action" && k != "Version" {
			params[k] = v
		}
	}
	rec := Request{Action: action, ClientToken: form.Get("ClientToken"), Attempt: attempt(r.Header.Get("Amz-Sdk-Request")), Params: params}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	res, err := s.handle(r, action, form)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "InternalError", err.Error()}
		}
		rec.Status = ae.status
		s.requests = append(s.requests, rec)
		writeError(w, ae.status, reqID, ae.code, ae.msg)
		return
	}
	rec.Status = http.StatusOK
	s.requests = append(s.requests, rec)
	writeResult(w, action, reqID, res)
}

// handle checks a request's credential and faults, then runs its action;
// the caller holds s.mu.
func (s *Server) handle(r *http.Request, action string, form url.Values) (any, error) {
	if s.opts.AccessKeyID != "" {
		if key := accessKeyID(r.Header.Get("Authorization")); key != s.opts.AccessKeyID {
			return nil, &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
		}
	}
	h, ok := actions[action]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", action)
	}
	if fs := s.faults[action]; len(fs) > 0 {
		s.faults[action] = fs[1:]
		return nil, &apiError{fs[0].status, fs[0].code, faultMessage(fs[0].code)}
	}
	if s.denied[action] {
		return nil, &apiError{http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."}
	}
	res, err := h(s, form)
	if err == nil && s.lost[action] > 0 {
		s.lost[action]--
		return nil, &apiError{http.StatusInternalServerError, "InternalError", "An internal error has occurred."}
	}
	return res, err
}

func faultMessage(code string) string {
	switch code {
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	case "InsufficientInstanceCapacity":
		return "We currently do not have sufficient capacity in the Availability Zone you requested."
	case "InstanceLimitExceeded":
		return "You have requested more instances than your current instance limit allows for the specified instance type."
	case "UnauthorizedOperation":
		return "You are not authorized to perform this operation."
	case "InternalError":
		return "An internal error has occurred."
	}
	return "Injected fault " + code + "."
}

var attemptRE = regexp.MustCompile(`attempt=(\d+)`)

// attempt reads the SDK's attempt counter ("attempt=2; max=3").
func attempt(h string) int {
	m := attemptRE.FindStringSubmatch(h)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// accessKeyID reads the key id from a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, …".
// The signature itself is not checked: only who claims to sign.
func accessKeyID(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// advance moves every instance, volume, attachment, snapshot and image
// whose transitional state has ended on to the next one; the caller holds
// s.mu. Nothing runs between requests: time is looked at when asked.
func (s *Server) advance() {
	now := s.now()
	defer s.advanceStorage(now)
	for _, in := range s.order {
		if in.until.IsZero() || now.Before(in.until) {
			continue
		}
		switch {
		case in.state == "pending" && in.bootFail != nil:
			s.terminate(in, *in.bootFail) // shutting-down now, terminated after TerminateDelay
			continue
		case in.state == "pending":
			in.state = "running"
		case in.state == "stopping":
			in.state = "stopped"
		case in.state == "shutting-down":
			in.state, in.publicIP = "terminated", ""
			s.release(in)
		}
		in.until = time.Time{}
	}
}

// newID returns prefix followed by 17 hex digits, the shape of EC2's ids.
func newID(prefix string) string {
	var b [9]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])[:17]
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
