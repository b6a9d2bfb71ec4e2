package ec2test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServeHTTP feeds the server arbitrary form bodies: whatever arrives,
// it answers with XML and a status, and never panics.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []string{
		"Action=RunInstances&ImageId=ami-12345678&MinCount=1&MaxCount=3&ClientToken=t&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a",
		"Action=DescribeInstances&Filter.1.Name=tag:a&Filter.1.Value.1=*&MaxResults=5&NextToken=nt-1",
		"Action=DescribeInstances&InstanceId.99999999999999999999=i-1",
		"Action=TerminateInstances&InstanceId.1=i-&InstanceId.2=x",
		"Action=AssociateAddress&PublicIp=127.0.0.1&InstanceId=i-1&AllowReassociation=true",
		"Action=DescribeAddresses&Filter.1.Name=tag:x&Filter.1.Value.1=[",
		"Action=CreateTags&ResourceId.1=i-1&Tag.1.Key=k",
		"Action=DeleteTags&ResourceId.1=vol-1&ResourceId.2=subnet-0000000a&Tag.1.Key=k&Tag.1.Value=",
		"Action=DescribeSubnets&SubnetId.1=subnet-0000000a&Filter.1.Name=availability-zone&Filter.1.Value.1=*a",
		"Action=RunInstances&ImageId=ami-12345678&MinCount=1&MaxCount=2&SubnetId=subnet-0000000b&BlockDeviceMapping.1.DeviceName=/dev/sdf&BlockDeviceMapping.1.Ebs.VolumeSize=1&BlockDeviceMapping.1.Ebs.SnapshotId=snap-1",
		"Action=CreateVolume&AvailabilityZone=us-east-1a&Size=1&VolumeType=io2&Iops=100&ClientToken=v&TagSpecification.1.ResourceType=volume",
		"Action=DescribeVolumes&Filter.1.Name=attachment.status&Filter.1.Value.1=attached&MaxResults=5",
		"Action=AttachVolume&VolumeId=vol-1&InstanceId=i-1&Device=/dev/sdf",
		"Action=DetachVolume&VolumeId=vol-1&Force=true",
		"Action=DeleteVolume&VolumeId=vol-1",
		"Action=CreateSnapshot&VolumeId=vol-1&Description=d",
		"Action=DescribeSnapshots&Owner.1=self&SnapshotId.1=snap-1",
		"Action=DeleteSnapshot&SnapshotId=snap-1",
		"Action=CreateImage&InstanceId=i-1&Name=abc&NoReboot=true",
		"Action=DescribeImages&Owner.1=amazon&ImageId.1=ami-12345678",
		"Action=DeregisterImage&ImageId=ami-1&DeleteAssociatedSnapshots=true",
		"%zz",
	} {
		f.Add(seed)
	}
	srv := New(Options{Capacity: 50, Addresses: map[string]string{"eipalloc-1": "127.0.0.1"}})
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if !strings.HasPrefix(rec.Body.String(), "<?xml") {
			t.Errorf("%q: reply %d is not XML: %q", body, rec.Code, rec.Body.String())
		}
	})
}
