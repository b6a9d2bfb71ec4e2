package route53

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/mototest"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// createZone makes a hosted zone on the server with awscli and returns its
// id (without /hostedzone/).
func createZone(t *testing.T, s *mototest.Server, name string, extra ...string) string {
	t.Helper()
	out := s.AWS(t, append([]string{"route53", "create-hosted-zone", "--name", name,
		"--caller-reference", name + time.Now().Format(time.RFC3339Nano)}, extra...)...)
	var resp struct{ HostedZone struct{ Id string } }
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.HostedZone.Id == "" {
		t.Fatalf("create-hosted-zone: %q (%v)", out, err)
	}
	return strings.TrimPrefix(resp.HostedZone.Id, "/hostedzone/")
}

// records returns the values and TTL of the zone's record name of type
// typ, as awscli lists them.
func records(t *testing.T, s *mototest.Server, zone, name, typ string) (values []string, ttl int) {
	t.Helper()
	out := s.AWS(t, "route53", "list-resource-record-sets", "--hosted-zone-id", zone)
	var resp struct {
		ResourceRecordSets []struct {
			Name, Type      string
			TTL             int
			ResourceRecords []struct{ Value string }
		}
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("list-resource-record-sets: %q (%v)", out, err)
	}
	for _, rr := range resp.ResourceRecordSets {
		if canonical(rr.Name) == canonical(name) && rr.Type == typ {
			for _, v := range rr.ResourceRecords {
				values = append(values, v.Value)
			}
			return values, rr.TTL
		}
	}
	return nil, 0
}

// TestRecordFollowsPrimary: Add points the record at the first primary,
// Switch moves it to the next, each change waited for; awscli, not the
// code under test, reads the record back. The zone is given by name and
// resolved once.
func TestRecordFollowsPrimary(t *testing.T) {
	s := mototest.Start(t)
	zone := createZone(t, s, "example.com")
	const secret = "wJalrXUtnFEMI/K7MDENG/ROUTE53SECRETKEY" // moto takes any
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	logs := &bytes.Buffer{}
	r, err := New(context.Background(), "db", Config{Zone: "example.com.", Name: "db.example.com", TTL: 30 * time.Second, Endpoint: s.URL},
		Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := runtime.Instance{ID: "i-1", Name: "node0", Pool: "db", Addr: "127.0.0.2:5432"}
	next := runtime.Instance{ID: "i-2", Name: "node1", Pool: "db", Addr: "127.0.0.3:5432"}
	if err := r.Add(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got, ttl := records(t, s, zone, "db.example.com", "A"); len(got) != 1 || got[0] != "127.0.0.2" || ttl != 30 {
		t.Fatalf("after Add: A %v TTL %d, want [127.0.0.2] TTL 30", got, ttl)
	}
	// The primary is fenced and killed: the record stays until the switch.
	if err := r.Fence(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := r.Switch(ctx, first, next); err != nil {
		t.Fatal(err)
	}
	if got, _ := records(t, s, zone, "db.example.com", "A"); len(got) != 1 || got[0] != "127.0.0.3" {
		t.Fatalf("after Switch: A %v, want [127.0.0.3]", got)
	}
	if err := r.Remove(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got, _ := records(t, s, zone, "db.example.com", "A"); len(got) != 1 || got[0] != "127.0.0.3" {
		t.Fatalf("after Remove of the old primary: A %v, want [127.0.0.3]", got)
	}
	// An IPv6 primary gets an AAAA record.
	if err := r.Switch(ctx, next, runtime.Instance{Name: "node2", Addr: "[::1]:5432"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := records(t, s, zone, "db.example.com", "AAAA"); len(got) != 1 || got[0] != "::1" {
		t.Fatalf("after Switch to an IPv6 address: AAAA %v, want [::1]", got)
	}
	for _, want := range []string{"route53: zone found", "id=" + zone, "route53: change in sync", "change=", "ip=127.0.0.3", "instance=node1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret key is in the log:\n%s", logs.String())
	}
}

// TestZoneErrors: a zone name Route 53 has no zone for, one with several,
// and a record outside its zone are *ZoneError, saying what to do.
func TestZoneErrors(t *testing.T) {
	s := mototest.Start(t)
	createZone(t, s, "example.com")
	createZone(t, s, "twice.org")
	createZone(t, s, "twice.org", "--vpc", "VPCRegion=us-east-1,VPCId=vpc-12345678", "--hosted-zone-config", "PrivateZone=true")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ zone, name, want, hint string }{
		{"nosuch.com.", "db.nosuch.com", "no hosted zone has this name", "list-hosted-zones"},
		{"twice.org", "db.twice.org", "2 hosted zones have this name", "give the zone's id"},
		{"example.com", "db.example.org", "not in the zone", "db.example.com."},
	} {
		r, err := New(ctx, "db", Config{Zone: tc.zone, Name: tc.name, Endpoint: s.URL}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Resolve(ctx)
		var ze *ZoneError
		if !errors.As(err, &ze) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(ze.Hint, tc.hint) {
			t.Errorf("zone %s, name %s: %v (hint %+v), want a ZoneError %q with a hint naming %q", tc.zone, tc.name, err, ze, tc.want, tc.hint)
		}
	}
	// A zone given by id is taken as it is: Route 53's refusal names it.
	r, err := New(ctx, "db", Config{Zone: "ZNOSUCHZONE", Name: "db.example.com", Endpoint: s.URL}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Add(ctx, runtime.Instance{Name: "node0", Addr: "127.0.0.2"})
	if err == nil || !strings.Contains(err.Error(), "NoSuchHostedZone") || !strings.Contains(err.Error(), "hint: check the zone setting") {
		t.Errorf("Add in an unknown zone: %v, want NoSuchHostedZone with a hint", err)
	}
	if err := r.Add(ctx, runtime.Instance{Name: "node0", Addr: "db-host:5432"}); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("Add of an instance without an IP: %v", err)
	}
}
