package ec2

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// TagImageOf names the instance slot an image was made from.
const TagImageOf = "cloudspeak:image-of"

// Image makes an AMI of inst named name ("gold image"), tagged with its
// pool and slot, and returns its ID once EC2 says it is available:
// runtime.Imager. With reboot, EC2 shuts the instance down for the copy
// so its file systems are consistent; without, a copy of a running file
// system may not boot clean.
func (p *Provider) Image(ctx context.Context, inst runtime.Instance, name string, reboot bool) (string, error) {
	pl, err := p.pool(inst.Pool)
	if err != nil {
		return "", err
	}
	tags := []types.Tag{{Key: aws.String(TagPool), Value: aws.String(inst.Pool)}, {Key: aws.String(TagImageOf), Value: aws.String(inst.Name)}}
	cctx, cancel := p.call(ctx)
	// The pool's volumes are data, not the machine: the image leaves them
	// out, so that instances launched from it do not start with a copy of
	// a primary's data (stale, and in the way of the real volume).
	out, err := pl.client.CreateImage(cctx, &ec2.CreateImageInput{InstanceId: aws.String(inst.ID), Name: aws.String(name),
		NoReboot: aws.Bool(!reboot), Description: aws.String(fmt.Sprintf("cloudspeak: %s/%s (%s)", inst.Pool, inst.Name, inst.ID)),
		BlockDeviceMappings: noDevices(pl.spec.Volumes),
		TagSpecifications:   []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: tags}}})
	cancel()
	if err != nil {
		hint := ""
		if code(err) == "InvalidAMIName.Duplicate" {
			hint = " (image names are unique in an account: choose another with as NAME)"
		}
		return "", fmt.Errorf("image of %s (%s): %w%s", inst.Name, inst.ID, wrap("CreateImage", pl.client.region, err), hint)
	}
	id := aws.ToString(out.ImageId)
	p.logf("ec2: pool %s: image %s (%s) of %s (%s), reboot %t", inst.Pool, id, name, inst.Name, inst.ID, reboot)
	w := ec2.NewImageAvailableWaiter(pl.client, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.opts.WaiterMinDelay, p.opts.WaiterMaxDelay
	})
	if err := w.Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, p.opts.ImageTimeout); err != nil {
		return id, fmt.Errorf("image %s of %s is not available: %w", id, inst.Name, err)
	}
	return id, nil
}

var _ runtime.Imager = (*Provider)(nil)
