package ec2

// A primary pool's volumes follow its primary (runtime.Attacher). On a
// failover the old primary has been killed (terminated) by the engine
// before Attach is called; Attach confirms that with a describe, detaches
// the volume (forcing it only if a plain detach is stuck, which is safe
// once the instance is fenced), attaches it to the new primary and waits
// for EC2 to say it is attached: only then does the engine move the
// address. A volume attached to an instance that still runs is never
// taken.
//
// Each step is written to a journal in the state directory before it is
// made, and cleared once a describe has confirmed it, so a daemon killed
// halfway finds the step on restart and finishes it (or, if the instance
// it was for is gone, leaves the volume for the next primary). The volumes
// themselves are found by their tags, never by the journal alone: a volume
// is tagged as it is created, so none is made that the tags do not know.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// TagVolume names the pool's volume a volume is; volumes also carry
// TagPool, and an instance's own also TagName.
const TagVolume = "cloudspeak:volume"

// blockDevices are the block device mappings that give each instance of a
// pool its own volumes.
func blockDevices(vols []Volume) []types.BlockDeviceMapping {
	var out []types.BlockDeviceMapping
	for _, v := range vols {
		ebs := &types.EbsBlockDevice{VolumeType: types.VolumeType(v.Type), DeleteOnTermination: aws.Bool(!v.Keep),
			SnapshotId: optional(v.Snapshot)}
		if v.SizeGiB > 0 {
			ebs.VolumeSize = aws.Int32(v.SizeGiB)
		}
		out = append(out, types.BlockDeviceMapping{DeviceName: aws.String(v.Device), Ebs: ebs})
	}
	return out
}

// noDevices maps the volumes' devices to nothing: a launch that must not
// make them, and an image that must not copy them.
func noDevices(vols []Volume) []types.BlockDeviceMapping {
	var out []types.BlockDeviceMapping
	for _, v := range vols {
		out = append(out, types.BlockDeviceMapping{DeviceName: aws.String(v.Device), NoDevice: aws.String("")})
	}
	return out
}

// volumeTags tags the volumes a launch makes. Tag specifications apply to
// every volume of the launch alike, so they say the pool, the slot and the
// pool's volume names (joined with commas when it declares several: which
// volume each is, its device says).
func volumeTags(poolName, name string, vols []Volume) types.TagSpecification {
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	return types.TagSpecification{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{
		{Key: aws.String(TagName), Value: aws.String(name)},
		{Key: aws.String(TagPool), Value: aws.String(poolName)},
		{Key: aws.String(TagVolume), Value: aws.String(strings.Join(names, ","))},
	}}
}

// findVolume returns the pool's volume named name, or nil if there is
// none yet; two are an error an operator must settle.
func (p *Provider) findVolume(ctx context.Context, pl *pool, poolName, name string) (*types.Volume, error) {
	vols, err := p.describeVolumes(ctx, pl, []types.Filter{filter("tag:"+TagPool, poolName), filter("tag:"+TagVolume, name),
		filter("status", "creating", "available", "in-use")})
	if err != nil || len(vols) == 0 {
		return nil, err
	}
	if len(vols) > 1 {
		var ids []string
		for _, v := range vols {
			ids = append(ids, aws.ToString(v.VolumeId))
		}
		return nil, fmt.Errorf("pool %s has %d volumes tagged %s=%s (%s): keep one (delete or untag the others), CloudSpeak will not guess which holds the data",
			poolName, len(vols), TagVolume, name, strings.Join(ids, ", "))
	}
	return &vols[0], nil
}

func (p *Provider) describeVolumes(ctx context.Context, pl *pool, filters []types.Filter) ([]types.Volume, error) {
	ctx, cancel := p.call(ctx)
	defer cancel()
	var out []types.Volume
	pages := ec2.NewDescribeVolumesPaginator(pl.client, &ec2.DescribeVolumesInput{Filters: filters})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("DescribeVolumes", pl.client.region, err)
		}
		out = append(out, page.Volumes...)
	}
	return out, nil
}

// errVolumeGone is a volume EC2 no longer has (or is deleting).
var errVolumeGone = errors.New("it is gone")

// volume describes one volume by ID.
func (p *Provider) volume(ctx context.Context, pl *pool, id string) (types.Volume, error) {
	vols, err := p.describeVolumes(ctx, pl, []types.Filter{filter("volume-id", id)})
	if err != nil {
		return types.Volume{}, err
	}
	if len(vols) == 0 || vols[0].State == types.VolumeStateDeleting || vols[0].State == types.VolumeStateDeleted {
		return types.Volume{}, fmt.Errorf("volume %s: %w", id, errVolumeGone)
	}
	return vols[0], nil
}

// Attach gives the primary pool's volumes to to: runtime.Attacher.
func (p *Provider) Attach(ctx context.Context, poolName string, to runtime.Instance) (string, error) {
	pl, err := p.pool(poolName)
	if err != nil || !pl.spec.Primary || len(pl.spec.Volumes) == 0 {
		return "", err
	}
	done, err := p.settle(ctx, pl, poolName, to)
	if err != nil {
		return strings.Join(done, "; "), err
	}
	for _, v := range pl.spec.Volumes {
		said, err := p.attachVolume(ctx, pl, poolName, v, to)
		if err != nil {
			return strings.Join(done, "; "), fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if said != "" {
			done = append(done, said)
		}
	}
	return strings.Join(done, "; "), nil
}

// attachVolume gives one volume to to, making it first if the pool has
// none yet, and says what it did ("" if to had it).
func (p *Provider) attachVolume(ctx context.Context, pl *pool, poolName string, v Volume, to runtime.Instance) (string, error) {
	vol, err := p.findVolume(ctx, pl, poolName, v.Name)
	if err != nil {
		return "", err
	}
	var said []string
	if vol == nil {
		start := time.Now()
		if vol, err = p.createVolume(ctx, pl, poolName, v, to.Zone); err != nil {
			return "", err
		}
		said = append(said, fmt.Sprintf("made %s (%s) in %s in %s", v.Name, aws.ToString(vol.VolumeId), to.Zone, since(start)))
	}
	id := aws.ToString(vol.VolumeId)
	if zone := aws.ToString(vol.AvailabilityZone); to.Zone != "" && zone != to.Zone {
		return "", fmt.Errorf("%s is in zone %s and %s in %s: a volume cannot leave its zone; give the pool subnets in %s (new instances then go there)",
			id, zone, to.Name, to.Zone, zone)
	}
	for _, a := range vol.Attachments {
		holder := aws.ToString(a.InstanceId)
		if holder == to.ID && (a.State == types.VolumeAttachmentStateAttached || a.State == types.VolumeAttachmentStateAttaching) {
			if a.State == types.VolumeAttachmentStateAttached {
				return strings.Join(said, "; "), nil
			}
			start := time.Now()
			if err := p.waitVolume(ctx, pl, id, attachedTo(to.ID)); err != nil {
				return "", err
			}
			return strings.Join(append(said, fmt.Sprintf("%s (%s) attached to %s in %s", v.Name, id, to.Name, since(start))), "; "), nil
		}
		start := time.Now()
		if err := p.detachFrom(ctx, pl, poolName, v, id, holder); err != nil {
			return "", err
		}
		said = append(said, fmt.Sprintf("%s (%s) detached from %s in %s", v.Name, id, holder, since(start)))
	}
	start := time.Now()
	if err := p.attachTo(ctx, pl, poolName, v, id, to); err != nil {
		return "", err
	}
	said = append(said, fmt.Sprintf("%s (%s) attached to %s (%s) at %s in %s", v.Name, id, to.Name, to.ID, v.Device, since(start)))
	return strings.Join(said, "; "), nil
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

// createVolume makes the pool's volume v in zone, tagged as it is made.
// Its client token (from the pool, the volume and a generation kept with
// the launch generations) makes a retry, or a restarted daemon's, get the
// same volume rather than a second; once the token's volume is gone
// (deleted by hand), the generation moves on and a new one is made.
func (p *Provider) createVolume(ctx context.Context, pl *pool, poolName string, v Volume, zone string) (*types.Volume, error) {
	if zone == "" {
		return nil, errors.New("the instance's zone is not known yet")
	}
	slot := "volume:" + v.Name
	gen, err := p.gens.Get(ctx, poolName, slot)
	if err != nil {
		return nil, fmt.Errorf("volume generation: %w", err)
	}
	if err := p.journal.begin(poolName, v.Name, step{Op: "create", Zone: zone}); err != nil {
		return nil, err
	}
	for retried := false; ; retried = true {
		id, err := p.createOne(ctx, pl, poolName, v, zone, clientToken(poolName, slot+"\x00"+zone, gen))
		if err != nil {
			return nil, err
		}
		_, err = p.volume(ctx, pl, id)
		if errors.Is(err, errVolumeGone) && !retried {
			p.logf("ec2: pool %s: volume %s's client token names %s, which is gone; making it anew", poolName, v.Name, id)
			if gen, err = p.gens.Bump(ctx, poolName, slot); err != nil {
				return nil, err
			}
			continue
		}
		if err == nil {
			err = p.waitVolume(ctx, pl, id, available)
		}
		if err != nil {
			return nil, err
		}
		vol, err := p.volume(ctx, pl, id)
		if err != nil {
			return nil, err
		}
		return &vol, p.journal.end(poolName, v.Name)
	}
}

// createOne asks EC2 for the volume, and returns its ID.
func (p *Provider) createOne(ctx context.Context, pl *pool, poolName string, v Volume, zone, token string) (string, error) {
	in := &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), VolumeType: types.VolumeType(v.Type),
		SnapshotId: optional(v.Snapshot), ClientToken: aws.String(token),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{
			{Key: aws.String(TagPool), Value: aws.String(poolName)}, {Key: aws.String(TagVolume), Value: aws.String(v.Name)}}}}}
	if v.SizeGiB > 0 {
		in.Size = aws.Int32(v.SizeGiB)
	}
	cctx, cancel := p.call(ctx)
	out, err := pl.client.CreateVolume(cctx, in)
	cancel()
	if err != nil {
		return "", fmt.Errorf("make it in %s: %w", zone, wrap("CreateVolume", pl.client.region, err))
	}
	id := aws.ToString(out.VolumeId)
	p.logf("ec2: pool %s: volume %s is %s (%s)", poolName, v.Name, id, zone)
	return id, nil
}

// detachFrom takes volume id off holder, which must be fenced: shutting
// down, terminated, stopped, or gone. A plain detach that stays stuck
// (the guest still had it mounted: "busy") past DetachGrace is forced,
// which is safe only because holder can no longer write.
func (p *Provider) detachFrom(ctx context.Context, pl *pool, poolName string, v Volume, id, holder string) error {
	ins, err := p.describe(ctx, pl.client, []types.Filter{filter("instance-id", holder)})
	if err != nil {
		return err
	}
	if len(ins) > 0 && !fenced(ins[0]) {
		return fmt.Errorf("%s is attached to %s, which is %s: a volume is never taken from an instance that still runs (stop or terminate it first)",
			id, holder, ins[0].State.Name)
	}
	if err := p.journal.begin(poolName, v.Name, step{Op: "detach", Volume: id, Instance: holder}); err != nil {
		return err
	}
	if err := p.detach(ctx, pl, id, holder, false); err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, p.opts.DetachGrace)
	err = p.waitVolume(gctx, pl, id, available)
	cancel()
	if err != nil && ctx.Err() == nil {
		p.logf("ec2: pool %s: volume %s (%s) still detaching from %s after %s: forcing it (the instance is fenced)", poolName, v.Name, id, holder, p.opts.DetachGrace)
		if err := p.detach(ctx, pl, id, holder, true); err != nil {
			return err
		}
		err = p.waitVolume(ctx, pl, id, available)
	}
	if err != nil {
		return err
	}
	return p.journal.end(poolName, v.Name)
}

func (p *Provider) detach(ctx context.Context, pl *pool, id, holder string, force bool) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	_, err := pl.client.DetachVolume(cctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String(holder), Force: aws.Bool(force)})
	switch code(err) {
	case "", "IncorrectState", "InvalidAttachment.NotFound":
		return nil // detaching or detached already (EC2 detaches a terminated instance's volumes itself)
	}
	return fmt.Errorf("detach %s from %s: %w", id, holder, wrap("DetachVolume", pl.client.region, err))
}

// attachTo attaches volume id to to at v's device and waits until EC2
// says it is attached.
func (p *Provider) attachTo(ctx context.Context, pl *pool, poolName string, v Volume, id string, to runtime.Instance) error {
	if err := p.journal.begin(poolName, v.Name, step{Op: "attach", Volume: id, Instance: to.ID, Device: v.Device}); err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	_, err := pl.client.AttachVolume(cctx, attachInput(id, to.ID, v.Device))
	cancel()
	if err != nil {
		hint := ""
		if code(err) == "InvalidVolume.ZoneMismatch" {
			hint = " (the volume and the instance are in different zones: give the pool subnets in the volume's zone)"
		}
		return fmt.Errorf("attach %s to %s: %w%s", id, to.ID, wrap("AttachVolume", pl.client.region, err), hint)
	}
	if err := p.waitVolume(ctx, pl, id, attachedTo(to.ID)); err != nil {
		return err
	}
	p.logf("ec2: pool %s: volume %s (%s) attached to %s (%s) at %s", poolName, v.Name, id, to.Name, to.ID, v.Device)
	return p.journal.end(poolName, v.Name)
}

func attachInput(volume, instance, device string) *ec2.AttachVolumeInput {
	return &ec2.AttachVolumeInput{VolumeId: aws.String(volume), InstanceId: aws.String(instance), Device: aws.String(device)}
}

// fenced says an instance can no longer write to a volume.
func fenced(in types.Instance) bool {
	if in.State == nil {
		return false // EC2 did not say: not known to be fenced
	}
	switch in.State.Name {
	case types.InstanceStateNameShuttingDown, types.InstanceStateNameTerminated, types.InstanceStateNameStopped:
		return true
	}
	return false
}

func available(v types.Volume) bool { return v.State == types.VolumeStateAvailable }

func attachedTo(id string) func(types.Volume) bool {
	return func(v types.Volume) bool {
		for _, a := range v.Attachments {
			if aws.ToString(a.InstanceId) == id && a.State == types.VolumeAttachmentStateAttached {
				return true
			}
		}
		return false
	}
}

// waitVolume describes volume id until ok holds, every VolumePoll, within
// VolumeTimeout (and ctx).
func (p *Provider) waitVolume(ctx context.Context, pl *pool, id string, ok func(types.Volume) bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.VolumeTimeout)
	defer cancel()
	for {
		v, err := p.volume(ctx, pl, id)
		if err == nil && ok(v) {
			return nil
		}
		select {
		case <-ctx.Done():
			state := string(v.State)
			for _, a := range v.Attachments {
				state += fmt.Sprintf(", %s to %s", a.State, aws.ToString(a.InstanceId))
			}
			if err != nil {
				state = err.Error()
			}
			return fmt.Errorf("volume %s: gave up waiting (%s): %w", id, state, ctx.Err())
		case <-time.After(p.opts.VolumePoll):
		}
	}
}
