package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// With etcd's authentication on, a daemon joins with its user and
// password, leads and writes its units; without them, or with a wrong
// password, it is refused at once and the error says so (and never
// carries the password).
func TestAuth(t *testing.T) {
	c := etcdtest.Start(t, 1)
	admin, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "cloudspeak"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "cloudspeak", "/cloudspeak/", clientv3.GetPrefixRangeEnd("/cloudspeak/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "daemon", "s3cret-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "daemon", "cloudspeak"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()

	for _, bad := range []Config{
		{Endpoints: c.Endpoints(), Name: "t", Member: "x"},
		{Endpoints: c.Endpoints(), Name: "t", Member: "x", Username: "daemon", Password: "wrong-pw"},
	} {
		_, err := Join(context.Background(), bad)
		if err == nil {
			t.Fatalf("joined as %q without the right password", bad.Username)
		}
		if !strings.Contains(err.Error(), "hint: ") {
			t.Errorf("no hint in %v", err)
		}
		if strings.Contains(err.Error(), "wrong-pw") {
			t.Fatalf("the error carries the password: %v", err)
		}
		t.Logf("refused as %q: %v", bad.Username, err)
	}
	n, err := Join(context.Background(), Config{Endpoints: c.Endpoints(), Name: "t", Member: "a", Username: "daemon", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.SetUnits([]string{"web"}, nil)
	testenv.WaitFor(t, 10*time.Second, "a leads web", func() bool { return n.Leads("web") })
	s := NewStore(n)
	if _, err := s.Generations().Bump(context.Background(), "web", "node0"); err != nil {
		t.Fatalf("a fenced write with the daemon's role: %v", err)
	}
}
