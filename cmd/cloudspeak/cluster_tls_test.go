package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// TestClusterTLS runs a daemon against an etcd that serves TLS and asks
// for a client certificate, with the options etcdctl takes: it joins with
// them, and is refused, saying why, without its certificate.
func TestClusterTLS(t *testing.T) {
	etcd, files := etcdtest.StartTLS(t, 1)
	dir := testenv.ShortDir(t)
	host, _ := os.Hostname()
	policy := filepath.Join(dir, "web.cloud")
	src := fmt.Sprintf("pool web {\n  provider local {\n    run \"exec sleep 60\"\n    host %q\n  }\n  instances 0..1\n}\n", host)
	if err := os.WriteFile(policy, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := clusterBin(t)
	c := &clusterRun{t: t, bin: bin, url: etcd.URL("secure"), policy: policy, known: filepath.Join(dir, "known_hosts"),
		env: []string{"CLOUDSPEAK_CLUSTER="}}

	// No client certificate: refused at start, with etcd's reason.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "run", "--cluster", c.url, "--member", "x", "--state", filepath.Join(dir, "state-x"),
		"--listen", "", "--cacert", files.CA, policy).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "TLS: ") || !strings.Contains(string(out), "hint: ") {
		t.Fatalf("without a client certificate: %v\n%s", err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))

	m := c.startWith("a", "--cacert", files.CA, "--cert", files.Cert, "--key", files.Key)
	testenv.WaitFor(t, 20*time.Second, "web led by a over TLS", func() bool {
		p, ok := c.pool(m, "web")
		return ok && p.Leader == "a"
	})
}
