package ec2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Stopping a pool's instances with no daemon. `pool stop` from the shell
// when no daemon runs acts on the instances the last one left in the state
// directory; for an ec2 pool it must reach EC2 as that daemon did, without
// the policy. So each pool's region and endpoint, as the daemon's AWS
// chain resolved them, and the AWS profile it ran with are kept in
// StateDir/ec2-pools.json (0600), written whenever a pool's spec is set.
// Never a credential: the client's own AWS chain gives those.

const reachesFile = "ec2-pools.json"

// Reach is how a daemon reached a pool's instances.
type Reach struct {
	Region   string `json:"region"`
	Endpoint string `json:"endpoint,omitempty"` // "" for the region's own
	// Profile is the AWS_PROFILE the daemon ran with: a name in the AWS
	// configuration files, which a client uses when its environment
	// names no profile and no keys.
	Profile string `json:"profile,omitempty"`
}

type reaches struct {
	mu   sync.Mutex
	path string // "" keeps them in memory only
	m    map[string]Reach
}

// loadReaches reads dir's file; a missing one is none yet.
func loadReaches(dir string) (*reaches, error) {
	r := &reaches{m: map[string]Reach{}}
	if dir == "" {
		return r, nil
	}
	r.path = filepath.Join(dir, reachesFile)
	if err := readStateFile(r.path, &r.m); err != nil {
		r.m = map[string]Reach{}
		return r, fmt.Errorf("%w (pool stop without a daemon will not reach ec2 pools until it is written again)", err)
	}
	return r, nil
}

// record keeps how the pool's EC2 is reached, if that changed.
func (p *Provider) record(pool string, c *client) error {
	r := p.reaches
	want := Reach{Region: c.region, Endpoint: c.endpoint, Profile: os.Getenv("AWS_PROFILE")}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[pool] == want {
		return nil
	}
	r.m[pool] = want
	if r.path == "" {
		return nil
	}
	return writeStateFile(r.path, r.m, "how ec2 pools are reached")
}

// ErrNotRecorded says no daemon recorded how to reach a pool.
var ErrNotRecorded = errors.New("no daemon recorded how to reach it")

// UseRecorded sets pool up from what a daemon recorded in StateDir, to
// stop its instances with no policy (it launches nothing). The client's
// AWS chain gives the credentials; the daemon's profile is used only when
// the client's environment names neither a profile nor keys.
func (p *Provider) UseRecorded(poolName string) (Reach, error) {
	p.reaches.mu.Lock()
	r, ok := p.reaches.m[poolName]
	p.reaches.mu.Unlock()
	if !ok {
		return Reach{}, fmt.Errorf("pool %s: %w in %s", poolName, ErrNotRecorded, p.reaches.path)
	}
	profile := r.Profile
	if os.Getenv("AWS_PROFILE") != "" || os.Getenv("AWS_ACCESS_KEY_ID") != "" {
		profile = "" // the client's own chain decides
	}
	c, err := p.client(r.Region, r.Endpoint, profile)
	if err != nil {
		return r, fmt.Errorf("pool %s: %w", poolName, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pools[poolName] == nil {
		p.pools[poolName] = &pool{spec: Spec{Region: r.Region, Endpoint: r.Endpoint}, client: c}
	}
	return r, nil
}

// terminatePoll spaces the describes that wait for terminations.
const terminatePoll = 500 * time.Millisecond

// Terminate terminates insts, of one pool, as Stop does, and waits until
// EC2 says each is shutting down or terminated (or no longer knows it),
// until ctx ends. It returns those confirmed, with the state EC2 gave
// each; the error says which were not, and why.
func (p *Provider) Terminate(ctx context.Context, insts []runtime.Instance) (confirmed map[string]string, err error) {
	confirmed = map[string]string{}
	if len(insts) == 0 {
		return confirmed, nil
	}
	pl, err := p.pool(insts[0].Pool)
	if err != nil {
		return confirmed, err
	}
	var errs []error
	waiting := map[string]runtime.Instance{}
	for _, in := range insts {
		if err := p.Stop(ctx, in); err != nil {
			errs = append(errs, err)
			continue
		}
		waiting[in.ID] = in
	}
	for len(waiting) > 0 {
		ids := make([]string, 0, len(waiting))
		for id := range waiting {
			ids = append(ids, id)
		}
		ins, err := p.describe(ctx, pl.client, []types.Filter{filter("instance-id", ids...)})
		var refused *Error
		if errors.As(err, &refused) {
			errs = append(errs, fmt.Errorf("confirm that %s shut down: %w", strings.Join(ids, ", "), err))
			break // EC2 answered no: waiting will not change it
		}
		if err == nil {
			states := map[string]types.InstanceStateName{}
			for _, in := range ins {
				if in.State != nil {
					states[aws.ToString(in.InstanceId)] = in.State.Name
				}
			}
			for _, id := range ids {
				st, known := states[id]
				if !known || st == types.InstanceStateNameShuttingDown || st == types.InstanceStateNameTerminated {
					confirmed[id] = string(st)
					if !known {
						confirmed[id] = "gone"
					}
					delete(waiting, id)
				}
			}
		}
		if len(waiting) == 0 {
			break
		}
		if !sleep(ctx, terminatePoll) {
			var names []string
			for _, in := range waiting {
				names = append(names, fmt.Sprintf("%s (%s)", in.Name, in.ID))
			}
			why := ctx.Err()
			if err != nil {
				why = err
			}
			errs = append(errs, fmt.Errorf("EC2 has not confirmed that %s shut down: %w", strings.Join(names, ", "), why))
			break
		}
	}
	return confirmed, errors.Join(errs...)
}
