package ec2

// Spreading a pool over availability zones: `subnets "…", "…"` names a
// subnet in each zone, and each launch goes to the zone with the fewest of
// the pool's live instances (the first subnet's on a tie), so a
// replacement refills the zone that lost one. A primary pool with a volume
// stays in its volume's zone: EBS volumes cannot leave their zone, and a
// standby elsewhere could never take the volume over.

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// lockLaunch serializes the launches of a pool that spreads over zones, or
// keeps to its volume's, so that each choice of zone sees the launches
// before it.
func (p *Provider) lockLaunch(pl *pool, poolName string) func() {
	if len(pl.spec.Subnets) < 2 && !(pl.spec.Primary && len(pl.spec.Volumes) > 0) {
		return func() {}
	}
	p.mu.Lock()
	if p.launching == nil {
		p.launching = map[string]*sync.Mutex{}
	}
	m := p.launching[poolName]
	if m == nil {
		m = &sync.Mutex{}
		p.launching[poolName] = m
	}
	p.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// chooseSubnet returns the subnet the pool's next instance goes to: ""
// for EC2's default, the one subnet, or the one in the zone the pool needs
// most. zone is set when there is no subnet but the instance must go to a
// zone all the same: a primary pool's volume's.
func (p *Provider) chooseSubnet(ctx context.Context, pl *pool, poolName string) (subnet, zone string, err error) {
	subnets := pl.spec.Subnets
	if len(subnets) == 0 {
		if pl.spec.Primary && len(pl.spec.Volumes) > 0 {
			zone, err = p.volumeZone(ctx, pl, poolName)
		}
		return "", zone, err
	}
	if len(subnets) == 1 && !(pl.spec.Primary && len(pl.spec.Volumes) > 0) {
		return subnets[0], "", nil
	}
	zones, err := p.subnetZones(ctx, pl)
	if err != nil {
		return "", "", err
	}
	if pl.spec.Primary && len(pl.spec.Volumes) > 0 {
		subnet, err = p.volumeSubnet(ctx, pl, poolName, zones)
		return subnet, "", err
	}
	live, err := p.List(ctx, poolName)
	if err != nil {
		return "", "", err
	}
	count := map[string]int{} // the live ones: a dying instance leaves its zone
	for _, in := range live {
		if in.State == runtime.Starting || in.State == runtime.Running {
			count[in.Zone]++
		}
	}
	best := subnets[0]
	for _, s := range subnets[1:] {
		if count[zones[s]] < count[zones[best]] {
			best = s
		}
	}
	return best, "", nil
}

// volumeZone is the zone a primary pool with volumes and no subnets
// launches in: its first volume's, or, before that is made, the zone of an
// instance the pool already has (the first primary's), so that the
// standbys are where the volume will be. "" leaves the first one to EC2.
func (p *Provider) volumeZone(ctx context.Context, pl *pool, poolName string) (string, error) {
	vol, err := p.findVolume(ctx, pl, poolName, pl.spec.Volumes[0].Name)
	if err != nil || vol != nil {
		if vol != nil {
			return aws.ToString(vol.AvailabilityZone), nil
		}
		return "", err
	}
	live, err := p.List(ctx, poolName)
	if err != nil {
		return "", err
	}
	for _, in := range live {
		if in.Zone != "" && (in.State == runtime.Starting || in.State == runtime.Running) {
			return in.Zone, nil
		}
	}
	return "", nil
}

// volumeSubnet is where a primary pool with volumes launches: in the zone
// of its first volume, once that exists; before, in the first subnet's
// zone, where the volume will then be made.
func (p *Provider) volumeSubnet(ctx context.Context, pl *pool, poolName string, zones map[string]string) (string, error) {
	vol, err := p.findVolume(ctx, pl, poolName, pl.spec.Volumes[0].Name)
	if err != nil || vol == nil {
		return pl.spec.Subnets[0], err
	}
	zone := aws.ToString(vol.AvailabilityZone)
	for _, s := range pl.spec.Subnets {
		if zones[s] == zone {
			return s, nil
		}
	}
	return "", fmt.Errorf("volume %s (%s) is in zone %s, and none of the pool's subnets is: add a subnet in %s to subnets, or the instances could never have it",
		pl.spec.Volumes[0].Name, aws.ToString(vol.VolumeId), zone, zone)
}

// subnetZones returns the zone of each of the pool's subnets, asked of EC2
// once per pool (and again after a reload changes them).
func (p *Provider) subnetZones(ctx context.Context, pl *pool) (map[string]string, error) {
	p.mu.Lock()
	z := pl.zones
	p.mu.Unlock()
	if z != nil {
		return z, nil
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	out, err := pl.client.DescribeSubnets(cctx, &ec2.DescribeSubnetsInput{SubnetIds: pl.spec.Subnets})
	if err != nil {
		return nil, fmt.Errorf("find the zones of subnets %v: %w", pl.spec.Subnets, wrap("DescribeSubnets", pl.client.region, err))
	}
	z = map[string]string{}
	for _, s := range out.Subnets {
		z[aws.ToString(s.SubnetId)] = aws.ToString(s.AvailabilityZone)
	}
	for _, s := range pl.spec.Subnets {
		if z[s] == "" {
			return nil, fmt.Errorf("subnet %s: EC2 does not list it in %s", s, pl.client.region)
		}
	}
	p.mu.Lock()
	pl.zones = z
	p.mu.Unlock()
	return z, nil
}
