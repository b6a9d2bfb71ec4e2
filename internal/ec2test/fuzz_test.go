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
