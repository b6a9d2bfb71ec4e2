package ec2

// Snapshots of a pool's volumes (`every 6h snapshot data keep 7`): each
// copy is tagged with the pool, the volume's name and the instance slot
// whose volume it copies ("" for a primary's), and only copies so tagged
// are ever deleted: the newest keep of each slot's stay.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Snapshot copies the pool's volumes named volume and deletes this
// policy's copies beyond the newest keep of each: runtime.Snapshotter.
func (p *Provider) Snapshot(ctx context.Context, poolName, volume string, keep int) (string, error) {
	pl, err := p.pool(poolName)
	if err != nil {
		return "", err
	}
	var v *Volume
	for i := range pl.spec.Volumes {
		if pl.spec.Volumes[i].Name == volume {
			v = &pl.spec.Volumes[i]
		}
	}
	if v == nil {
		return "", fmt.Errorf("pool %s declares no volume %s", poolName, volume)
	}
	vols, err := p.poolVolumes(ctx, pl, poolName, *v)
	if err != nil {
		return "", err
	}
	if len(vols) == 0 {
		return "", fmt.Errorf("pool %s has no volume %s yet: it is made with the pool's first instance", poolName, volume)
	}
	var made []string
	for _, vol := range vols {
		id, err := p.snapshotOne(ctx, pl, poolName, volume, vol)
		if err != nil {
			return strings.Join(made, ", "), err
		}
		made = append(made, fmt.Sprintf("%s of %s", id, aws.ToString(vol.VolumeId)))
	}
	deleted, err := p.prune(ctx, pl, poolName, volume, keep)
	summary := "made " + strings.Join(made, ", ")
	if len(deleted) > 0 {
		summary += "; deleted " + strings.Join(deleted, ", ")
	}
	return summary, err
}

// poolVolumes returns the pool's live volumes of declaration v: the
// primary's one, tagged with its name, or each instance's, found by their
// tags and device.
func (p *Provider) poolVolumes(ctx context.Context, pl *pool, poolName string, v Volume) ([]types.Volume, error) {
	if pl.spec.Primary {
		vol, err := p.findVolume(ctx, pl, poolName, v.Name)
		if vol == nil || err != nil {
			return nil, err
		}
		return []types.Volume{*vol}, nil
	}
	all, err := p.describeVolumes(ctx, pl, []types.Filter{filter("tag:"+TagPool, poolName), filter("attachment.device", v.Device),
		filter("status", "in-use")})
	if err != nil {
		return nil, err
	}
	return all, nil
}

func (p *Provider) snapshotOne(ctx context.Context, pl *pool, poolName, volume string, vol types.Volume) (string, error) {
	slot := tagOf(vol.Tags, TagName)
	tags := []types.Tag{{Key: aws.String(TagPool), Value: aws.String(poolName)}, {Key: aws.String(TagVolume), Value: aws.String(volume)}}
	if slot != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagName), Value: aws.String(slot)})
	}
	desc := fmt.Sprintf("cloudspeak: pool %s, volume %s", poolName, volume)
	if slot != "" {
		desc += " of " + slot
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	out, err := pl.client.CreateSnapshot(cctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId, Description: aws.String(desc),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: tags}}})
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", aws.ToString(vol.VolumeId), wrap("CreateSnapshot", pl.client.region, err))
	}
	id := aws.ToString(out.SnapshotId)
	p.logf("ec2: pool %s: snapshot %s of volume %s (%s)", poolName, id, volume, aws.ToString(vol.VolumeId))
	return id, nil
}

// prune deletes the pool's copies of volume beyond the newest keep
// completed ones of each slot. A copy still being made is never deleted,
// nor counted (it may yet fail); a failed copy ("error") is no backup, and
// goes; one an image was made from (InvalidSnapshot.InUse) stays, said.
func (p *Provider) prune(ctx context.Context, pl *pool, poolName, volume string, keep int) ([]string, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	var snaps []types.Snapshot
	pages := ec2.NewDescribeSnapshotsPaginator(pl.client, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []types.Filter{filter("tag:"+TagPool, poolName), filter("tag:"+TagVolume, volume)}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(cctx)
		if err != nil {
			return nil, wrap("DescribeSnapshots", pl.client.region, err)
		}
		snaps = append(snaps, page.Snapshots...)
	}
	bySlot := map[string][]types.Snapshot{}
	for _, s := range snaps {
		slot := tagOf(s.Tags, TagName)
		bySlot[slot] = append(bySlot[slot], s)
	}
	var deleted []string
	var errs []error
	for _, list := range bySlot {
		sort.Slice(list, func(i, j int) bool { return aws.ToTime(list[i].StartTime).After(aws.ToTime(list[j].StartTime)) })
		kept := 0
		for _, s := range list {
			switch {
			case s.State == types.SnapshotStatePending:
				continue
			case s.State == types.SnapshotStateCompleted && kept < keep:
				kept++
				continue
			}
			id := aws.ToString(s.SnapshotId)
			_, err := pl.client.DeleteSnapshot(cctx, &ec2.DeleteSnapshotInput{SnapshotId: s.SnapshotId})
			switch {
			case code(err) == "InvalidSnapshot.InUse":
				p.logf("ec2: pool %s: snapshot %s of volume %s is beyond keep %d but an image uses it: kept", poolName, id, volume, keep)
			case err != nil:
				errs = append(errs, fmt.Errorf("delete %s, beyond keep %d: %w", id, keep, wrap("DeleteSnapshot", pl.client.region, err)))
			default:
				deleted = append(deleted, id)
			}
		}
	}
	sort.Strings(deleted)
	return deleted, errors.Join(errs...)
}

func tagOf(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

var _ runtime.Snapshotter = (*Provider)(nil)
