package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/promtest"
	"github.com/cloudspeak/cloudspeak/internal/s3test"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
)

// TestMain lets the scripts run "cloudspeak" in-process: testscript
// re-executes this test binary as the command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cloudspeak": func() {
			os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
		},
	})
}

// TestScripts runs testdata/script/*.txtar: each script is one behaviour of
// the command line, written as a user would type it.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") != "",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "") // as on a CI machine; colors are tested in lang
			// The examples, as a user finds them, in $WORK/examples.
			examples, _ := filepath.Glob("../../examples/*.cloud")
			os.Mkdir(filepath.Join(env.WorkDir, "examples"), 0o755)
			for _, ex := range examples {
				data, err := os.ReadFile(ex)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(env.WorkDir, "examples", filepath.Base(ex)), data, 0o644); err != nil {
					return err
				}
			}
			if _, err := exec.LookPath("haproxy"); err != nil && os.Getenv("CI") == "true" {
				return errors.New("CI=true and haproxy is not installed: scripts/test installs Debian's haproxy package")
			}
			if _, err := os.Stat(sshdtest.SSHD); err != nil && os.Getenv("CI") == "true" {
				return errors.New("CI=true and sshd is not installed: scripts/test installs Debian's openssh-server package")
			}
			if _, err := s3test.Binary(); err != nil && os.Getenv("CI") == "true" {
				return fmt.Errorf("CI=true and %v", err)
			}
			if _, err := exec.LookPath("prometheus"); err != nil && os.Getenv("CI") == "true" {
				return errors.New("CI=true and prometheus is not installed: scripts/test installs Debian's prometheus package")
			}
			if _, err := os.Stat(s3test.AWSCLI); err != nil && os.Getenv("CI") == "true" {
				return errors.New("CI=true and awscli is not installed: scripts/test installs Debian's awscli package")
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "haproxy" { // [!haproxy] skip: only off CI (see Setup)
				_, err := exec.LookPath("haproxy")
				return err == nil, nil
			}
			if cond == "prometheus" { // [!prometheus] skip: only off CI (see Setup)
				_, err := exec.LookPath("prometheus")
				return err == nil, nil
			}
			if cond == "sshd" { // [!sshd] skip: only off CI (see Setup)
				_, err := os.Stat(sshdtest.SSHD)
				return err == nil, nil
			}
			if cond == "s3" { // [!s3] skip: only off CI (see Setup): versitygw and awscli
				_, err := s3test.Binary()
				_, err2 := os.Stat(s3test.AWSCLI)
				return err == nil && err2 == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"waitfor": waitFor, "instip": instIP, "procs": procs, "load": load,
			"httpwait": httpWait, "haproxy": haproxyCmd, "sighup": sighup, "holdport": holdPort,
			"instance-signal": instanceSignal, "sshd": sshdCmd, "ec2server": ec2Server,
			"s3server": s3Server, "s3wait": s3Wait, "promserver": promServer},
	})
}

// waitFor is `waitfor REGEXP ARGS...`: it runs `cloudspeak ARGS` (with the
// script's CLOUDSPEAK_STATE) every 50ms until its output matches REGEXP,
// failing after 20s. It lets a script wait for a daemon in the background.
func waitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitfor REGEXP ARGS...")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	cmd := append([]string{"--state", ts.Getenv("CLOUDSPEAK_STATE")}, args[1:]...)
	deadline := time.Now().Add(20 * time.Second)
	var out bytes.Buffer
	for time.Now().Before(deadline) {
		out.Reset()
		run(cmd, stdio{in: strings.NewReader(""), out: &out, err: io.Discard})
		if re.Match(out.Bytes()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("waitfor %q: cloudspeak %s never printed it; last output:\n%s", args[0], strings.Join(args[1:], " "), out.String())
}

// instIP is `instip NODE VAR`: it waits (20s at most) until `cloudspeak
// pool list` lists the instance NODE, and sets VAR to its IP. Local
// instances lease their loopback addresses machine-wide, so a script's
// first instance is on 127.0.0.2 only if no other daemon (another script,
// a quickstart) has it: scripts read the address rather than assume it.
func instIP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: instip NODE VAR")
	}
	re := regexp.MustCompile(`(?m)^\d+: INSTANCE: ` + regexp.QuoteMeta(args[0]) + ` - (\S+) - `)
	cmd := []string{"--state", ts.Getenv("CLOUDSPEAK_STATE"), "pool", "list"}
	var out bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out.Reset()
		run(cmd, stdio{in: strings.NewReader(""), out: &out, err: io.Discard})
		if m := re.FindStringSubmatch(out.String()); m != nil {
			ts.Setenv(args[1], m[1])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("instip %s: pool list never listed it; last output:\n%s", args[0], out.String())
}

// procs is `procs DIR N`: exactly N live processes run in a working
// directory under DIR (checked in /proc, waiting up to 10s for the count to
// settle). Local instances run in their own directories under the state
// dir, so this finds orphans and duplicates of one script alone.
func procs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: procs DIR N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	root := ts.MkAbs(args[0])
	count := func() int {
		n := 0
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			cwd, err := os.Readlink(filepath.Join(d, "cwd"))
			if err != nil || !strings.HasPrefix(cwd, root+string(filepath.Separator)) {
				continue
			}
			if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil && bytes.Contains(stat, []byte(") Z ")) {
				continue // a zombie has exited
			}
			n++
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := count(); got != want {
		ts.Fatalf("%d processes run under %s, want %d", got, args[0], want)
	}
}

// load is `load URL DURATION WORKERS [RATE]`: WORKERS loops requesting URL
// for DURATION, each at most RATE requests per second if given, in the
// background of the script (it returns at once). It drives an instance's
// CPU, or a balancer's request rate, for the end-to-end scripts; requests
// stay on loopback.
func load(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 && len(args) != 4 {
		ts.Fatalf("usage: load URL DURATION WORKERS [RATE]")
	}
	var pause time.Duration
	if len(args) == 4 {
		rate, err := strconv.Atoi(args[3])
		ts.Check(err)
		pause = time.Second / time.Duration(max(rate, 1))
	}
	d, err := time.ParseDuration(args[1])
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	if !strings.HasPrefix(args[0], "http://127.") {
		ts.Fatalf("load only targets loopback addresses")
	}
	end := time.Now().Add(d)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		go func() { // bounded by end; owned by the script
			for time.Now().Before(end) {
				if resp, err := client.Get(args[0]); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else {
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(pause)
			}
		}()
	}
}

// httpWait is `httpwait URL REGEXP [STATUS]`: it GETs URL (on loopback)
// every 50ms until the body matches REGEXP (and the status is STATUS, if
// given), failing after 20s.
func httpWait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: httpwait URL REGEXP [STATUS]")
	}
	status := 0
	if len(args) == 3 {
		n, err := strconv.Atoi(args[2])
		ts.Check(err)
		status = n
	}
	if !strings.HasPrefix(args[0], "http://127.") {
		ts.Fatalf("httpwait only targets loopback addresses")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := client.Get(args[0])
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + "\n" + string(body)
			if re.MatchString(string(body)) && (status == 0 || resp.StatusCode == status) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(last) > 2000 {
		last = last[:2000] + "…"
	}
	ts.Fatalf("httpwait %s %q: never matched; last answer:\n%s", args[0], args[1], last)
}

// haproxyCmd is `haproxy kill worker|master` (SIGKILL to the daemon's
// HAProxy, found through its master socket in the script's state dir) or
// `haproxy stopped` (no HAProxy of the state dir is left, within 10s).
func haproxyCmd(ts *testscript.TestScript, neg bool, args []string) {
	dir := filepath.Join(ts.Getenv("CLOUDSPEAK_STATE"), "haproxy")
	master := func() (string, error) {
		conn, err := net.DialTimeout("unix", filepath.Join(dir, "master.sock"), time.Second)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(conn, "show proc\n")
		conn.(*net.UnixConn).CloseWrite()
		out, err := io.ReadAll(conn)
		return string(out), err
	}
	switch {
	case !neg && len(args) == 2 && args[0] == "kill":
		out, err := master()
		ts.Check(err)
		pid := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[1] == args[1] {
				pid, _ = strconv.Atoi(f[0])
				break
			}
		}
		if pid == 0 {
			ts.Fatalf("no %s in show proc:\n%s", args[1], out)
		}
		ts.Check(syscall.Kill(pid, syscall.SIGKILL))
	case !neg && len(args) == 1 && args[0] == "stopped":
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := master(); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		ts.Fatalf("HAProxy still answers on %s", dir)
	default:
		ts.Fatalf("usage: haproxy kill worker|master, or haproxy stopped")
	}
}

// sighup sends SIGHUP to the script's daemon: the `cloudspeak run` whose
// environment has the script's CLOUDSPEAK_STATE.
func sighup(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: sighup")
	}
	want := []byte("CLOUDSPEAK_STATE=" + ts.Getenv("CLOUDSPEAK_STATE") + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		env, _ := os.ReadFile(filepath.Join(d, "environ"))
		if bytes.Contains(cmdline, []byte("\x00run\x00")) && bytes.Contains(env, want) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			ts.Check(syscall.Kill(pid, syscall.SIGHUP))
			return
		}
	}
	ts.Fatalf("no daemon of this script runs")
}

// instanceSignal is `instance-signal KILL|STOP|CONT POOL NAME`: the signal
// to a local instance's process group, found through the record the local
// provider keeps in the script's state dir. Negated, it checks that the
// instance has no process left to signal (within 5s: a killed process is
// gone once reaped).
func instanceSignal(ts *testscript.TestScript, neg bool, args []string) {
	sigs := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}
	if len(args) != 3 || sigs[args[0]] == 0 {
		ts.Fatalf("usage: instance-signal KILL|STOP|CONT POOL NAME")
	}
	signal := func() error {
		data, err := os.ReadFile(filepath.Join(ts.Getenv("CLOUDSPEAK_STATE"), "instances", args[1], args[2], "instance.json"))
		if err != nil {
			return err
		}
		var rec struct{ PID int }
		if err := json.Unmarshal(data, &rec); err != nil || rec.PID <= 1 {
			return fmt.Errorf("instance %s/%s: no process in its record", args[1], args[2])
		}
		return syscall.Kill(-rec.PID, sigs[args[0]])
	}
	err := signal()
	// A killed process lingers until it is reaped and its record cleared:
	// negated, give that a moment.
	for deadline := time.Now().Add(5 * time.Second); neg && err == nil && time.Now().Before(deadline); err = signal() {
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case neg && err == nil:
		ts.Fatalf("instance %s/%s still has a process to signal", args[1], args[2])
	case !neg && err != nil:
		ts.Fatalf("instance-signal: %v", err)
	}
}

// holdPort is `holdport ADDR`: something else listens on ADDR (loopback)
// until the script ends.
func holdPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 || !strings.HasPrefix(args[0], "127.") {
		ts.Fatalf("usage: holdport 127.x.x.x:PORT")
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", args[0])
	ts.Check(err)
	ts.Defer(func() { ln.Close() })
}

// clusters are the sshd clusters of the running scripts.
var clusters sync.Map // *testscript.TestScript → *sshdtest.Cluster

// sshdCmd is `sshd N FILE...`: it starts N real OpenSSH sshd on 127.0.0.1
// for the script (stopped when it ends) and, in each FILE, replaces
// SSH_HOSTS with their list ("127.0.0.1:PORT", …) and SSH_KEY with the
// user key's path, SSH_PORT0 with the first's port, and SSH_WORK with
// $WORK. $KNOWN_HOSTS lists their host keys; $SSH_USER_KEY is
// the key. `sshd rekey I` restarts the I'th with a new host key, as a
// reinstalled (or impostor) machine would have.
func sshdCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: sshd N FILE... | sshd rekey I")
	}
	if args[0] == "rekey" {
		v, _ := clusters.Load(ts)
		c, _ := v.(*sshdtest.Cluster)
		if c == nil || len(args) != 2 {
			ts.Fatalf("usage: sshd rekey I, after sshd N")
		}
		i, err := strconv.Atoi(args[1])
		ts.Check(err)
		key := filepath.Join(c.Dir, "other_host_key")
		if _, err := os.Stat(key); err != nil {
			_, err = sshdtest.WriteKey(key)
			ts.Check(err)
		}
		ts.Check(c.Restart(i, key))
		return
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	dir := ts.MkAbs("sshd")
	ts.Check(os.MkdirAll(dir, 0o700))
	c, err := sshdtest.Start(dir, n)
	ts.Check(err)
	clusters.Store(ts, c)
	ts.Defer(func() {
		clusters.Delete(ts)
		c.Stop()
	})
	var hosts []string
	for _, h := range c.Hosts() {
		hosts = append(hosts, strconv.Quote(h))
	}
	for _, f := range args[1:] {
		path := ts.MkAbs(f)
		data, err := os.ReadFile(path)
		ts.Check(err)
		data = []byte(strings.NewReplacer("SSH_HOSTS", strings.Join(hosts, ", "), "SSH_KEY", strconv.Quote(c.UserKey), "SSH_WORK", ts.Getenv("WORK"), "SSH_PORT0", strconv.Itoa(c.Ports[0])).Replace(string(data)))
		ts.Check(os.WriteFile(path, data, 0o644))
	}
	ts.Setenv("KNOWN_HOSTS", c.KnownHosts)
	ts.Setenv("SSH_USER_KEY", c.UserKey)
}

// ec2Servers are the EC2 test servers of the running scripts.
var ec2Servers sync.Map // *testscript.TestScript → *ec2test.Server

// ec2Server is `ec2server FILE...`: it starts the EC2-compatible test
// server (internal/ec2test) on 127.0.0.1 for the script, replaces EC2_URL
// with its URL in each FILE (and SUBNET_A, SUBNET_B with its subnets in
// us-east-1a and 1b), and gives the script test credentials (and a
// HOME without ~/.aws) for the AWS chain. Then `ec2server fail-launches N
// CODE` makes its next N launches fail to boot with that state reason,
// and `ec2server instances` prints its instances, "ID STATE POOL/NAME"
// a line, terminated ones too, for stdout to check.
func ec2Server(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: ec2server FILE... | ec2server fail-launches N CODE | ec2server instances")
	}
	if len(args) > 0 && (args[0] == "fail-launches" || args[0] == "instances") {
		v, _ := ec2Servers.Load(ts)
		srv, _ := v.(*ec2test.Server)
		switch {
		case srv == nil:
			ts.Fatalf("ec2server %s: no ec2server runs", args[0])
		case args[0] == "instances" && len(args) == 1:
			for _, in := range srv.Instances() {
				fmt.Fprintf(ts.Stdout(), "%s %s %s/%s\n", in.ID, in.State, in.Tags["cloudspeak:pool"], in.Tags["cloudspeak:name"])
			}
		case args[0] == "fail-launches" && len(args) == 3:
			n, err := strconv.Atoi(args[1])
			ts.Check(err)
			srv.FailLaunches(n, args[2], "")
		default:
			ts.Fatalf("usage: ec2server fail-launches N CODE | ec2server instances")
		}
		return
	}
	// An Elastic IP (eipalloc-0script), and volumes that take their time.
	srv := ec2test.New(ec2test.Options{BootDelay: 300 * time.Millisecond, TerminateDelay: 300 * time.Millisecond,
		AttachDelay: 200 * time.Millisecond, DetachDelay: 200 * time.Millisecond, Addresses: map[string]string{"eipalloc-0script": "127.0.0.1"}})
	ts.Check(srv.Start("127.0.0.1:0"))
	ec2Servers.Store(ts, srv)
	ts.Defer(func() {
		ec2Servers.Delete(ts)
		srv.Close()
	})
	for _, f := range args {
		path := ts.MkAbs(f)
		data, err := os.ReadFile(path)
		ts.Check(err)
		data = bytes.ReplaceAll(data, []byte("EC2_URL"), []byte(strconv.Quote(srv.URL())))
		data = bytes.ReplaceAll(data, []byte("SUBNET_A"), []byte(strconv.Quote(ec2test.SubnetA)))
		data = bytes.ReplaceAll(data, []byte("SUBNET_B"), []byte(strconv.Quote(ec2test.SubnetB)))
		ts.Check(os.WriteFile(path, data, 0o644))
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDSCRIPT", "AWS_SECRET_ACCESS_KEY": "script-secret-key",
		"AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": ts.MkAbs("no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": ts.MkAbs("no-aws-credentials"),
		"EC2_URL": srv.URL()} {
		ts.Setenv(k, v)
	}
}

// s3Server is `s3server BUCKET...`: it starts a real S3 server (versitygw,
// internal/s3test) on 127.0.0.1 for the script, makes the buckets, and
// points the standard AWS environment at it (S3_ENDPOINT is its URL, for
// awscli's --endpoint-url).
func s3Server(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: s3server BUCKET...")
	}
	srv, err := s3test.Start(ts.MkAbs("s3server"))
	ts.Check(err)
	ts.Defer(srv.Stop)
	for _, b := range args {
		ts.Check(srv.CreateBucket(b))
	}
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		ts.Setenv(k, v)
	}
	ts.Setenv("S3_ENDPOINT", srv.Endpoint)
	ts.Setenv("AWS_PAGER", "")
}

// s3Wait is `s3wait BUCKET/KEY`: it waits up to 20s for the object to
// exist on the script's S3 server (see s3server), for what a daemon
// writes in the background.
func s3Wait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: s3wait BUCKET/KEY")
	}
	bucket, key, _ := strings.Cut(args[0], "/")
	cli := awss3.New(awss3.Options{
		BaseEndpoint: aws.String(ts.Getenv("S3_ENDPOINT")), UsePathStyle: true, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	})
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("s3wait: s3://%s never appeared: %v", args[0], err)
}

// promServer is `promserver ADDR TARGET...`: it runs a real Prometheus on
// ADDR (127.0.0.1:PORT) scraping the targets every second, until the
// script ends. A target file:PATH is the targets a daemon keeps in PATH
// (run --file-sd PATH), as file_sd_configs reads them.
func promServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: promserver ADDR TARGET...")
	}
	dir := ts.MkAbs("prometheus")
	ts.Check(os.MkdirAll(dir, 0o755))
	var static, files []string
	for _, tg := range args[1:] {
		if path, ok := strings.CutPrefix(tg, "file:"); ok {
			files = append(files, fmt.Sprintf("%q", ts.MkAbs(path)))
		} else {
			if !strings.HasPrefix(tg, "127.") {
				ts.Fatalf("promserver scrapes loopback targets only, not %s", tg)
			}
			static = append(static, fmt.Sprintf("%q", tg))
		}
	}
	cfg := "  - job_name: demo\n"
	if len(static) > 0 {
		cfg += fmt.Sprintf("    static_configs:\n      - targets: [%s]\n", strings.Join(static, ", "))
	}
	if len(files) > 0 {
		cfg += fmt.Sprintf("    file_sd_configs:\n      - files: [%s]\n", strings.Join(files, ", "))
	}
	s, err := promtest.RunConfig(dir, args[0], time.Second, cfg)
	ts.Check(err)
	ts.Defer(s.Stop)
}
