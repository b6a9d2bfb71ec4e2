// Package ec2 is the provider whose instances are EC2 instances:
// `provider ec2 { region image type keypair subnet security_group user_data
// tags endpoint elastic_ip }`. Every instance it launches is tagged with its
// pool, name and role, and that is all it keeps: a restarted daemon finds
// (adopts) its instances by those tags, reports instances of pools no longer
// declared as strangers, and never touches an instance without them.
//
// Credentials, region and endpoint come from the standard AWS chain
// (environment, shared files, AWS_PROFILE, AWS_ENDPOINT_URL_EC2), or the
// pool's own region and endpoint settings. Throttling and transient errors
// are retried by the SDK; what EC2 refuses is an *Error with a hint.
//
// It knows the EC2 API and its block's settings (settings.go), not the engine's
// decisions: it starts, lists and stops what it is asked to.
package ec2

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// The tags that make an instance ours.
const (
	TagPool = "cloudspeak:pool"
	TagName = "cloudspeak:name"
	TagRole = "cloudspeak:role"
)

// Spec is how a pool's instances are launched.
type Spec struct {
	Region  string // default: the AWS chain's (AWS_REGION, the profile)
	Image   string // AMI id; required
	Type    string // instance type; default EC2's
	KeyPair string
	// Subnets are where instances go: one, or several in different
	// availability zones, over which a pool is spread evenly (zones.go).
	Subnets       []string
	SecurityGroup string // an id (sg-…) or, in a default VPC, a name
	UserData      string // the script itself; base64 is done here
	Endpoint      string // overrides the chain's endpoint (AWS_ENDPOINT_URL_EC2)
	ElasticIP     string // allocation id (eipalloc-…) or public IP; moved on failover
	Tags          map[string]string
	// Port is the pool's service port: an instance's Addr is IP:Port, or
	// just IP when Port is 0.
	Port int
	// BootTimeout bounds pending → running; an instance that takes
	// longer is Failed. Default DefaultBootTimeout.
	BootTimeout time.Duration
	// Volumes are the pool's EBS volumes; Primary says they follow the
	// pool's primary (one each) rather than being each instance's own.
	Volumes []Volume
	Primary bool
}

// DefaultBootTimeout is how long an instance may stay pending.
const DefaultBootTimeout = 10 * time.Minute

// Options shape a provider.
type Options struct {
	// StateDir holds the launch generations file (0600). Empty keeps them
	// in memory: a restarted daemon may then launch a slot twice.
	StateDir string
	// Generations, if set, keeps the launch generations in place of
	// StateDir: in a cluster, in each pool's fenced state, so that a pool's
	// new leader launches under its old leader's tokens.
	Generations Generations
	// Log reports what the provider does on its own (boot waits); nil
	// discards it.
	Log func(format string, args ...any)
	// WaiterMinDelay and WaiterMaxDelay space the boot waiter's
	// DescribeInstances calls; default 5s and 30s.
	WaiterMinDelay, WaiterMaxDelay time.Duration
	// RetryMaxBackoff caps the SDK retryer's backoff (default the SDK's, 20s).
	RetryMaxBackoff time.Duration
	// CallTimeout bounds each EC2 call, retries included; default 60s.
	CallTimeout time.Duration
	// StateTTL is how long Alive reuses one DescribeInstances of a pool,
	// so the probes of a heartbeat round share one call; default 1s.
	StateTTL time.Duration
	// HTTPClient, if set, carries the SDK's requests.
	HTTPClient aws.HTTPClient
	// VolumePoll spaces the describes that wait on a volume (default 500ms);
	// VolumeTimeout bounds each wait (default 5m); DetachGrace is how long
	// a plain detach from a fenced instance may take before it is forced
	// (default 20s).
	VolumePoll, VolumeTimeout, DetachGrace time.Duration
	// ImageTimeout bounds the wait for a new image (default 1h).
	ImageTimeout time.Duration
}

// Provider launches and terminates EC2 instances: runtime.Provider,
// runtime.Killer, runtime.Switcher (the Elastic IP) and heartbeat.Liveness.
type Provider struct {
	opts   Options
	gens   Generations
	ctx    context.Context // background work (boot waiters) stops when it ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pools   map[string]*pool
	clients map[string]*client // by region and endpoint
	boots   map[string]*boot   // by instance id
	states  map[string]*stateCache
	// launching serializes the launches of each pool spread over zones.
	launching map[string]*sync.Mutex
	journal   *journal // volume operations under way (volumes.go)
	reaches   *reaches // how each pool's EC2 is reached, for a client with no daemon (offline.go)
	// terminated are the instances this provider terminated (ID → pool),
	// until EC2 no longer lists them; live are, by pool, those the last
	// List had starting or running. What ends otherwise failed, and says
	// why (reasons.go).
	terminated map[string]string
	live       map[string]map[string]bool
}

type pool struct {
	spec   Spec
	client *client
	zones  map[string]string // subnet → zone, once asked (zones.go)
}

type client struct {
	*ec2.Client
	region   string // the region it reaches, as the AWS chain resolved it
	endpoint string // its endpoint, if not the region's: the pool's, or the chain's
}

// boot is what the provider knows of an instance's way to running.
type boot struct {
	pool   string
	failed error // set when it did not reach running within the boot timeout
	done   bool
}

// stateCache is one pool's instance states for Alive; its mutex is held
// while they are fetched, so concurrent probes wait for one call.
type stateCache struct {
	mu      sync.Mutex
	at      time.Time
	states  map[string]types.InstanceStateName
	reasons map[string]string // of those that ended: why, in EC2's words
	err     error
}

// New returns a provider; Close stops its background work.
func New(opts Options) *Provider {
	if opts.WaiterMinDelay <= 0 {
		opts.WaiterMinDelay = 5 * time.Second
	}
	if opts.WaiterMaxDelay < opts.WaiterMinDelay {
		opts.WaiterMaxDelay = max(30*time.Second, opts.WaiterMinDelay)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 60 * time.Second
	}
	if opts.StateTTL <= 0 {
		opts.StateTTL = time.Second
	}
	opts.VolumePoll = cmp.Or(opts.VolumePoll, 500*time.Millisecond)
	opts.VolumeTimeout = cmp.Or(opts.VolumeTimeout, 5*time.Minute)
	opts.DetachGrace = cmp.Or(opts.DetachGrace, 20*time.Second)
	opts.ImageTimeout = cmp.Or(opts.ImageTimeout, time.Hour)
	p := &Provider{opts: opts, pools: map[string]*pool{}, clients: map[string]*client{},
		boots: map[string]*boot{}, states: map[string]*stateCache{}, terminated: map[string]string{}, live: map[string]map[string]bool{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	j, err := loadJournal(opts.StateDir)
	if err != nil {
		p.logf("ec2: %v", err)
	}
	p.journal = j
	if p.reaches, err = loadReaches(opts.StateDir); err != nil {
		p.logf("ec2: %v", err)
	}
	if opts.Generations != nil {
		p.gens = opts.Generations
		return p
	}
	gens, err := loadGenerations(opts.StateDir)
	if err != nil {
		p.logf("ec2: %v", err)
	}
	p.gens = gens
	return p
}

// Close stops the boot waiters and waits for them.
func (p *Provider) Close() {
	p.cancel()
	p.wg.Wait()
}

func (p *Provider) logf(format string, args ...any) {
	if p.opts.Log != nil {
		p.opts.Log(format, args...)
	}
}

// SetSpec sets (or, on a policy reload, changes) how pool's instances are
// launched, and makes the EC2 client for its region and endpoint.
func (p *Provider) SetSpec(poolName string, s Spec) error {
	if s.Image == "" {
		return fmt.Errorf("pool %s: provider ec2 needs an image (an AMI id)", poolName)
	}
	if s.BootTimeout <= 0 {
		s.BootTimeout = DefaultBootTimeout
	}
	c, err := p.client(s.Region, s.Endpoint, "")
	if err != nil {
		return fmt.Errorf("pool %s: %w", poolName, err)
	}
	p.mu.Lock()
	p.pools[poolName] = &pool{spec: s, client: c}
	p.mu.Unlock()
	// For a client with no daemon to stop the pool's instances (offline.go).
	if err := p.record(poolName, c); err != nil {
		p.logf("ec2: pool %s: %v (pool stop without a daemon will not reach it)", poolName, err)
	}
	return nil
}

// client returns the (cached) EC2 client for region and endpoint, made
// from the AWS chain (with profile, if not "").
func (p *Provider) client(region, endpoint, profile string) (*client, error) {
	key := region + "\x00" + endpoint + "\x00" + profile
	p.mu.Lock()
	c := p.clients[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.CallTimeout)
	defer cancel()
	var load []func(*config.LoadOptions) error
	if region != "" {
		load = append(load, config.WithRegion(region))
	}
	if p.opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(p.opts.HTTPClient))
	}
	if profile != "" {
		load = append(load, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration (environment, AWS_PROFILE, ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set `region` in the provider, or AWS_REGION, or a region in the AWS profile")
	}
	ec := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if p.opts.RetryMaxBackoff > 0 {
			o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, p.opts.RetryMaxBackoff)
		}
	})
	c = &client{Client: ec, region: cfg.Region, endpoint: aws.ToString(ec.Options().BaseEndpoint)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.clients[key]; old != nil {
		return old, nil // made meanwhile by another SetSpec
	}
	p.clients[key] = c
	return c, nil
}

func (p *Provider) pool(name string) (*pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.pools[name]
	if pl == nil {
		return nil, fmt.Errorf("pool %s has no ec2 provider", name)
	}
	return pl, nil
}

func (p *Provider) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.opts.CallTimeout)
}

// Start launches the slot name of pool. It returns as soon as EC2 has
// accepted the launch, with the instance Starting; List reports it Running
// once it is (a boot waiter bounds how long that may take).
func (p *Provider) Start(ctx context.Context, poolName, name string) (runtime.Instance, error) {
	pl, err := p.pool(poolName)
	if err != nil {
		return runtime.Instance{}, err
	}
	if pl.spec.Image == "" {
		return runtime.Instance{}, fmt.Errorf("start %s/%s: the pool is known only from the state directory, to stop its instances: it launches nothing", poolName, name)
	}
	gen, err := p.gens.Get(ctx, poolName, name)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s/%s: launch generation: %w", poolName, name, err)
	}
	// One launch of a pool at a time when it spreads over zones, so that
	// each choice counts the launch before it.
	unlock := p.lockLaunch(pl, poolName)
	defer unlock()
	subnet, zone, err := p.chooseSubnet(ctx, pl, poolName)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s/%s: %w", poolName, name, err)
	}
	for retried := false; ; retried = true {
		token := clientToken(poolName, name, gen)
		in, err := p.run(ctx, pl, poolName, name, token, subnet, zone)
		if code(err) == "IdempotentParameterMismatch" {
			// The slot was launched under this token with other settings
			// (a reload between a crash and the restart): that launch is
			// the slot's, if it still lives.
			in, err = p.byToken(ctx, pl, token, err)
		}
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("start %s/%s: %w", poolName, name, err)
		}
		if !gone(in) {
			inst := p.instance(pl.spec, in)
			inst.State = runtime.Starting
			if in.State.Name == types.InstanceStateNamePending {
				p.watchBoot(pl, poolName, in)
			}
			p.logf("ec2: pool %s: %s is %s (%s, %s)", poolName, name, inst.ID, in.State.Name, pl.client.region)
			return inst, nil
		}
		if retried {
			return runtime.Instance{}, fmt.Errorf("start %s/%s: the new launch token also names a terminated instance (%s)", poolName, name, aws.ToString(in.InstanceId))
		}
		// The token names an instance that is gone: the slot's generation
		// was lost (a new StateDir) after it last ran. Move it on.
		p.logf("ec2: pool %s: %s's launch token names %s, which is %s; launching anew", poolName, name, aws.ToString(in.InstanceId), in.State.Name)
		if gen, err = p.gens.Bump(ctx, poolName, name); err != nil {
			return runtime.Instance{}, fmt.Errorf("start %s/%s: %w", poolName, name, err)
		}
	}
}

func (p *Provider) run(ctx context.Context, pl *pool, poolName, name, token, subnet, zone string) (types.Instance, error) {
	s := pl.spec
	tags := map[string]string{}
	for k, v := range s.Tags {
		tags[k] = v
	}
	tags[TagPool], tags[TagName], tags[TagRole] = poolName, name, string(runtime.Serving)
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	// Sorted, so a retry after a restart sends the very same arguments:
	// EC2 compares them (IdempotentParameterMismatch).
	sort.Strings(keys)
	spec := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
	for _, k := range keys {
		spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(s.Image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken: aws.String(token), TagSpecifications: []types.TagSpecification{spec},
		InstanceType: types.InstanceType(s.Type), KeyName: optional(s.KeyPair), SubnetId: optional(subnet),
	}
	if zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: aws.String(zone)}
	}
	if s.Primary {
		// The primary's volume comes by Attach: the devices stay free,
		// even if the image (a gold image of an old primary) maps them.
		in.BlockDeviceMappings = noDevices(s.Volumes)
	}
	if !s.Primary && len(s.Volumes) > 0 {
		// Each instance's own volumes are made with it, in its zone, and
		// attached before it boots.
		in.BlockDeviceMappings = blockDevices(s.Volumes)
		in.TagSpecifications = append(in.TagSpecifications, volumeTags(poolName, name, s.Volumes))
	}
	if s.SecurityGroup != "" {
		if strings.HasPrefix(s.SecurityGroup, "sg-") {
			in.SecurityGroupIds = []string{s.SecurityGroup}
		} else {
			in.SecurityGroups = []string{s.SecurityGroup}
		}
	}
	if s.UserData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(s.UserData)))
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	out, err := pl.client.RunInstances(cctx, in)
	if err != nil {
		return types.Instance{}, wrap("RunInstances", pl.client.region, err)
	}
	if len(out.Instances) != 1 {
		return types.Instance{}, fmt.Errorf("ec2 RunInstances: %d instances in the reply, want 1", len(out.Instances))
	}
	return out.Instances[0], nil
}

// byToken finds the instance launched with token; mismatch is the error to
// return if there is none.
func (p *Provider) byToken(ctx context.Context, pl *pool, token string, mismatch error) (types.Instance, error) {
	ins, err := p.describe(ctx, pl.client, []types.Filter{filter("client-token", token)})
	if err != nil {
		return types.Instance{}, err
	}
	if len(ins) == 0 {
		return types.Instance{}, mismatch
	}
	return ins[0], nil
}

func gone(in types.Instance) bool {
	return in.State == nil || in.State.Name == types.InstanceStateNameShuttingDown || in.State.Name == types.InstanceStateNameTerminated
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// instance converts an EC2 instance into the runtime's view.
func (p *Provider) instance(s Spec, in types.Instance) runtime.Instance {
	tags := map[string]string{}
	for _, t := range in.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	inst := runtime.Instance{
		ID: aws.ToString(in.InstanceId), Name: tags[TagName], Pool: tags[TagPool],
		Role: runtime.Role(tags[TagRole]), State: state(in),
	}
	if inst.Role == "" {
		inst.Role = runtime.Serving
	}
	if in.LaunchTime != nil {
		inst.Started = *in.LaunchTime
	}
	if in.Placement != nil {
		inst.Zone = aws.ToString(in.Placement.AvailabilityZone)
	}
	ip := aws.ToString(in.PublicIpAddress)
	if ip == "" {
		ip = aws.ToString(in.PrivateIpAddress)
	}
	switch {
	case ip == "":
	case s.Port > 0:
		inst.Addr = net.JoinHostPort(ip, strconv.Itoa(s.Port))
	default:
		inst.Addr = ip
	}
	return inst
}

func state(in types.Instance) runtime.InstanceState {
	if in.State == nil {
		return runtime.Failed
	}
	switch in.State.Name {
	case types.InstanceStateNamePending:
		return runtime.Starting
	case types.InstanceStateNameRunning:
		return runtime.Running
	case types.InstanceStateNameStopped:
		return runtime.Stopped
	}
	return runtime.Stopping // stopping, shutting-down
}

// listed are the states List reports: all but terminated.
var listed = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// List reports the pool's instances, found by their cloudspeak:pool tag (so
// a restarted daemon adopts them), in launch order. One whose boot timed
// out is Failed.
func (p *Provider) List(ctx context.Context, poolName string) ([]runtime.Instance, error) {
	pl, err := p.pool(poolName)
	if err != nil {
		return nil, err
	}
	ins, err := p.describe(ctx, pl.client, []types.Filter{filter("tag:"+TagPool, poolName), filter("instance-state-name", listed...)})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", poolName, err)
	}
	out := make([]runtime.Instance, 0, len(ins))
	seen := map[string]bool{}
	for _, in := range ins {
		inst := p.instance(pl.spec, in)
		seen[inst.ID] = true
		if inst.State == runtime.Starting {
			p.watchBoot(pl, poolName, in) // adopted while pending: bound its boot too
		}
		p.mu.Lock()
		// A boot failure sticks: an instance that came up too late is
		// replaced all the same.
		if b := p.boots[inst.ID]; b != nil && b.failed != nil && (inst.State == runtime.Starting || inst.State == runtime.Running) {
			inst.State = runtime.Failed
		}
		p.mu.Unlock()
		out = append(out, inst)
	}
	p.mu.Lock()
	for id, b := range p.boots {
		if b.pool == poolName && b.done && !seen[id] {
			delete(p.boots, id) // terminated: nothing more to say about its boot
		}
	}
	p.mu.Unlock()
	out = p.failures(ctx, pl, poolName, ins, out)
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Started.Before(out[j].Started) || out[i].Started.Equal(out[j].Started) && out[i].ID < out[j].ID
	})
	return out, nil
}

// describe runs DescribeInstances with filters over all its pages.
func (p *Provider) describe(ctx context.Context, c *client, filters []types.Filter) ([]types.Instance, error) {
	ctx, cancel := p.call(ctx)
	defer cancel()
	var out []types.Instance
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: filters})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("DescribeInstances", c.region, err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

// Stop terminates the instance. It returns once EC2 has accepted that;
// List reports the instance Stopping until it is terminated. The slot's
// next launch gets a new token.
func (p *Provider) Stop(ctx context.Context, inst runtime.Instance) error {
	pl, err := p.pool(inst.Pool)
	if err != nil {
		return err
	}
	// The generation moves on first: had the daemon crashed after the
	// terminate, the slot's old token would name a terminated instance.
	if _, err := p.gens.Bump(ctx, inst.Pool, inst.Name); err != nil {
		return fmt.Errorf("stop %s: %w", inst.Name, err)
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	p.mu.Lock()
	p.terminated[inst.ID] = inst.Pool // before: a List meanwhile must not take it for a failure
	p.mu.Unlock()
	_, err = pl.client.TerminateInstances(cctx, &ec2.TerminateInstancesInput{InstanceIds: []string{inst.ID}})
	if code(err) == "InvalidInstanceID.NotFound" {
		err = nil // gone already
	}
	if err != nil {
		p.mu.Lock()
		delete(p.terminated, inst.ID)
		p.mu.Unlock()
		return fmt.Errorf("stop %s (%s): %w", inst.Name, inst.ID, wrap("TerminateInstances", pl.client.region, err))
	}
	p.invalidate(inst.Pool)
	p.logf("ec2: pool %s: terminating %s (%s)", inst.Pool, inst.Name, inst.ID)
	return nil
}

// Kill is Stop: EC2 has nothing faster than TerminateInstances (a stop
// with Force only skips the guest's shutdown for a stop, not a
// terminate), and a terminated instance cannot come back.
func (p *Provider) Kill(ctx context.Context, inst runtime.Instance) error { return p.Stop(ctx, inst) }

// Alive says whether EC2 has the instance running: nil if so; an error
// while it is pending or stopped; a runtime.Gone error once it is shutting
// down, terminated or unknown. The probes of a pool share one
// DescribeInstances per StateTTL.
func (p *Provider) Alive(ctx context.Context, inst runtime.Instance) error {
	states, reasons, err := p.poolStates(ctx, inst.Pool, inst.ID)
	if err != nil {
		return err
	}
	st, ok := states[inst.ID]
	switch {
	case !ok:
		return runtime.Gone(fmt.Errorf("instance %s is not in EC2", inst.ID))
	case st == types.InstanceStateNameRunning:
		return nil
	case st == types.InstanceStateNamePending:
		return fmt.Errorf("instance %s is still booting", inst.ID)
	case st == types.InstanceStateNameShuttingDown || st == types.InstanceStateNameTerminated:
		if why := reasons[inst.ID]; why != "" {
			return runtime.Gone(fmt.Errorf("instance %s is %s: %s", inst.ID, st, why))
		}
		return runtime.Gone(fmt.Errorf("instance %s is %s", inst.ID, st))
	}
	return fmt.Errorf("instance %s is %s", inst.ID, st)
}

// poolStates returns the states of poolName's instances, fetched at most
// StateTTL ago, unless id is not among them: an instance launched since
// the last fetch must not look gone.
func (p *Provider) poolStates(ctx context.Context, poolName, id string) (map[string]types.InstanceStateName, map[string]string, error) {
	pl, err := p.pool(poolName)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	c := p.states[poolName]
	if c == nil {
		c = &stateCache{}
		p.states[poolName] = c
	}
	p.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < p.opts.StateTTL {
		if _, known := c.states[id]; known || c.err != nil {
			return c.states, c.reasons, c.err
		}
	}
	// Terminated ones too: those are gone, not unknown.
	ins, err := p.describe(ctx, pl.client, []types.Filter{filter("tag:"+TagPool, poolName)})
	c.at, c.err, c.states, c.reasons = time.Now(), err, map[string]types.InstanceStateName{}, map[string]string{}
	if err != nil {
		// Kept for the TTL too: when EC2 fails, N probes must not become
		// N more calls.
		c.err = fmt.Errorf("ask EC2 about pool %s: %w", poolName, err)
	}
	for _, in := range ins {
		if in.State != nil {
			c.states[aws.ToString(in.InstanceId)] = in.State.Name
		}
		if !gone(in) {
			continue
		}
		if why := endReason(in); why != "" {
			c.reasons[aws.ToString(in.InstanceId)] = why
		}
	}
	return c.states, c.reasons, c.err
}

// invalidate drops poolName's cached states, after a change made here.
func (p *Provider) invalidate(poolName string) {
	p.mu.Lock()
	c := p.states[poolName]
	p.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		c.at = time.Time{}
		c.mu.Unlock()
	}
}

var (
	_ runtime.Provider = (*Provider)(nil)
	_ runtime.Killer   = (*Provider)(nil)
	_ runtime.Switcher = (*Provider)(nil)
)
