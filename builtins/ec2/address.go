package ec2

// Elastic IPs that follow a primary, and the instances tagged for pools no
// policy declares.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// MoveAddress associates pool's Elastic IP with to, taking it from
// whichever instance has it: one AssociateAddress, so the address is never
// on two instances and off all of them only while EC2 moves it.
func (p *Provider) MoveAddress(ctx context.Context, poolName string, to runtime.Instance) error {
	pl, err := p.pool(poolName)
	if err != nil {
		return err
	}
	eip := pl.spec.ElasticIP
	if eip == "" {
		return fmt.Errorf("pool %s has no elastic_ip to move", poolName)
	}
	in := &ec2.AssociateAddressInput{InstanceId: aws.String(to.ID), AllowReassociation: aws.Bool(true)}
	if strings.HasPrefix(eip, "eipalloc-") {
		in.AllocationId = aws.String(eip)
	} else {
		in.PublicIp = aws.String(eip)
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	if _, err := pl.client.AssociateAddress(cctx, in); err != nil {
		return fmt.Errorf("move %s's elastic IP %s to %s (%s): %w", poolName, eip, to.Name, to.ID, wrap("AssociateAddress", pl.client.region, err))
	}
	p.logf("ec2: pool %s: elastic IP %s → %s (%s)", poolName, eip, to.Name, to.ID)
	return nil
}

// Switch moves the pool's Elastic IP from from to to: runtime.Switcher.
func (p *Provider) Switch(ctx context.Context, from, to runtime.Instance) error {
	return p.MoveAddress(ctx, to.Pool, to)
}

// Stranger is an instance tagged as CloudSpeak's whose pool the policy
// does not declare: reported, never touched.
type Stranger struct {
	ID, Pool, Name, State, Region string
	Launched                      time.Time
}

// Strangers returns the live instances, in the regions and endpoints of
// the pools set so far, tagged cloudspeak:pool with a pool not in pools.
// Instances without the tag are never looked at.
func (p *Provider) Strangers(ctx context.Context, pools []string) ([]Stranger, error) {
	declared := map[string]bool{}
	for _, name := range pools {
		declared[name] = true
	}
	p.mu.Lock()
	clients := make([]*client, 0, len(p.clients))
	for _, c := range p.clients {
		clients = append(clients, c)
	}
	p.mu.Unlock()
	var out []Stranger
	seen := map[string]bool{}
	for _, c := range clients {
		ins, err := p.describe(ctx, c, []types.Filter{filter("tag-key", TagPool), filter("instance-state-name", listed...)})
		if err != nil {
			return nil, fmt.Errorf("look for stranger instances in %s: %w", c.region, err)
		}
		for _, in := range ins {
			inst := p.instance(Spec{}, in)
			if declared[inst.Pool] || seen[inst.ID] {
				continue
			}
			seen[inst.ID] = true
			out = append(out, Stranger{ID: inst.ID, Pool: inst.Pool, Name: inst.Name,
				State: string(in.State.Name), Region: c.region, Launched: inst.Started})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Launched.Before(out[j].Launched) })
	return out, nil
}
