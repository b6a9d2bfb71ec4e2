package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/builtins/console"
	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/internal/sdnotify"
	"github.com/cloudspeak/cloudspeak/lang"
)

var runVerb = &verb{
	name:    "run",
	summary: "run policies: the daemon, in the foreground",
	usage: `Usage: cloudspeak run [options] POLICY.cloud...
       cloudspeak run --cluster URL [options] [POLICY.cloud...]

Runs the policies until stopped: evaluates every pool's rules on its tick,
starts and stops instances, runs every and at jobs. State (instances, rule
windows, cooldowns) is kept in the state directory, so a restart resumes
where the last run stopped and adopts the instances it left.

The state directory is --state, else $CLOUDSPEAK_STATE, else
$XDG_STATE_HOME/cloudspeak, else ~/.local/state/cloudspeak.

Signals: SIGHUP reloads the policy files (a policy with errors is rejected,
with its diagnostics, and the running one goes on); SIGTERM or SIGINT stop
gracefully: instances are stopped, unless --keep.

Under systemd (Type=notify, examples/cloudspeak.service) it says READY=1
once the policy runs, RELOADING=1 and READY=1 around a reload and
STOPPING=1 when it stops, and with WatchdogSec it feeds the watchdog while
its engine answers.

HTTP on --listen: the console, a web page of the pools, their instances,
rules and decisions, live (http://127.0.0.1:9464/), with its JSON under
/api; /status (JSON), /metrics (Prometheus) and /sd, the serving
instances as Prometheus http_sd_configs targets (?all=1 for every
instance). --file-sd FILE keeps the same targets in FILE, for
file_sd_configs, rewritten atomically when they change. The console is
read-only; --console-token-file FILE asks every request for a token (and
is required to --listen on an address other than loopback), and
--console-actions then lets the page drain instances and set pools'
sizes, each action logged with who asked.

SSH (ec2 and ssh pools) verifies every host's key against --known-hosts
(default ~/.ssh/known_hosts): an unknown host is refused unless
--accept-new, which records its key on first contact as OpenSSH's
StrictHostKeyChecking=accept-new does; a changed key is always refused.
AWS credentials and region come from the standard AWS chain (AWS_PROFILE,
AWS_ACCESS_KEY_ID, ~/.aws/config, ...); AWS_ENDPOINT_URL_EC2 overrides the
endpoint.

A cluster (--cluster etcd://HOST:PORT[,HOST:PORT...][/NAME], or
$CLOUDSPEAK_CLUSTER; etcds:// for TLS): daemons that run the same policy
with the same cluster share its pools out, each pool led by one of them,
its state in etcd; a pool whose leader dies is taken over within the lease
(--cluster-ttl). They run one policy, kept in etcd: the first daemon
publishes its files; one started with other files is refused (--publish
makes its files the cluster's), one started with none runs the cluster's;
SIGHUP on a daemon whose files changed publishes them to all. Every
daemon's HAProxy serves every pool with a balancer, following its leader's
instances; --balancer-listen POOL=ADDR binds this daemon's frontend for the
pool at its own address. TLS and credentials are given as etcdctl takes them:
--cacert, --cert, --key, --user NAME[:PASSWORD] (or $ETCDCTL_USER) and
--password (or $ETCDCTL_PASSWORD). See the spec, "Clusters".

Exit status: 0 after a graceful stop, 1 if running failed, 2 on bad usage
or policy errors.`,
}

func init() {
	runVerb.run = func(args []string, std stdio) int {
		fs := flags(runVerb, std)
		state := fs.String("state", std.state, "the state `DIR` (see above)")
		listen := fs.String("listen", "127.0.0.1:9464", "serve /status and /metrics on `ADDR` (\"\" for none)")
		fileSD := fs.String("file-sd", "", "keep the serving instances in `FILE` as Prometheus file_sd_configs targets")
		tokenFile := fs.String("console-token-file", "", "require a token from `FILE` (lines NAME SECRET, mode 0600) of every HTTP request: the console's login, or Authorization: Bearer")
		consoleActions := fs.Bool("console-actions", false, "let the console drain instances and set pools' sizes (needs --console-token-file; each action is logged with who asked)")
		keep := fs.Bool("keep", false, "on stop, leave instances (and HAProxy) running for the next start to adopt")
		haproxyBin := fs.String("haproxy", "haproxy", "the haproxy `PROGRAM` for pools with a balancer")
		knownHosts := fs.String("known-hosts", "", "the known_hosts `FILE` SSH host keys are checked against (default ~/.ssh/known_hosts)")
		acceptNew := fs.Bool("accept-new", false, "record the key of an SSH host seen for the first time (a changed key is still refused)")
		clusterURL := fs.String("cluster", os.Getenv("CLOUDSPEAK_CLUSTER"), "join the cluster at `URL` (etcd://HOST:PORT,.../NAME; see above)")
		clusterTTL := fs.Duration("cluster-ttl", cluster.DefaultTTL, "the leaders' lease: a dead daemon's pools are taken over within it")
		balancerListen := balancerListenFlag(fs)
		publish := fs.Bool("publish", false, "make the policy files given the cluster's policy, even if it runs another")
		member := fs.String("member", "", "this daemon's `NAME` in the cluster (default HOST-PID)")
		cacert := fs.String("cacert", "", "verify etcd's certificate with this CA `FILE` (TLS)")
		cert := fs.String("cert", "", "identify to etcd with this client certificate `FILE` (TLS)")
		key := fs.String("key", "", "the client certificate's key `FILE` (TLS)")
		etcdUser := fs.String("user", "", "etcd's `NAME[:PASSWORD]` (default $ETCDCTL_USER)")
		etcdPassword := fs.String("password", "", "etcd's password (default $ETCDCTL_PASSWORD; never logged)")
		format := fs.String("log-format", "", "text or json (default: text)")
		level := fs.String("log-level", "info", "debug, info, warn or error")
		if st := parseFlags(fs, runVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() == 0 && *clusterURL == "" {
			return usageError(std, runVerb, "no policy file given")
		}
		if *publish && (*clusterURL == "" || fs.NArg() == 0) {
			return usageError(std, runVerb, "--publish makes the policy files given the cluster's: it needs --cluster and files")
		}
		dir, err := stateDir(*state)
		if err != nil {
			return usageError(std, runVerb, "%v", err)
		}
		log, err := newLogger(std.err, *format, *level)
		if err != nil {
			return usageError(std, runVerb, "%v", err)
		}
		// Take the signals before starting, so none is lost.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
		defer signal.Stop(sigs)
		cfg := daemon.Config{Policies: fs.Args(), StateDir: dir, Listen: *listen, Keep: *keep, Log: log, HAProxy: *haproxyBin, AcceptNew: *acceptNew, Publish: *publish, BalancerListen: balancerListen, FileSD: *fileSD}
		if *knownHosts != "" {
			abs, err := filepath.Abs(*knownHosts)
			if err != nil {
				return usageError(std, runVerb, "--known-hosts: %v", err)
			}
			cfg.KnownHosts = []string{abs}
		}
		if *tokenFile != "" {
			if cfg.ConsoleTokens, err = console.ReadTokens(*tokenFile); err != nil {
				return usageError(std, runVerb, "--console-token-file %v", err)
			}
		}
		cfg.ConsoleActions = *consoleActions
		if err := daemon.CheckConsole(cfg); err != nil {
			return usageError(std, runVerb, "%v", err)
		}
		if *clusterURL != "" {
			cc, err := clusterConfig(*clusterURL, *clusterTTL, *member, *cacert, *cert, *key, *etcdUser, *etcdPassword)
			if err != nil {
				return usageError(std, runVerb, "%v", err)
			}
			cc.Log = log
			cfg.Cluster = cc
		}
		d, err := daemon.Start(cfg)
		if err != nil {
			return reportRunError(std, err)
		}
		stopWatchdog := notifySystemd(d, log)
		defer stopWatchdog()
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				sdnotify.Notify("RELOADING=1")
				if err := d.Reload(); err != nil {
					reportRunError(std, err)
				}
				sdnotify.Notify("READY=1")
				continue
			}
			sdnotify.Notify("STOPPING=1")
			log.Info("signal: stopping", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := d.Stop(ctx)
			cancel()
			if err != nil {
				log.Error("stop", "err", err)
				return exitFail
			}
			return exitOK
		}
		return exitOK
	}
}

// clusterConfig reads --cluster and its TLS and credential options.
func clusterConfig(url string, ttl time.Duration, member, cacert, cert, key, user, password string) (*cluster.Config, error) {
	eps, name, secure, err := cluster.ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg := &cluster.Config{Endpoints: eps, Name: name, TTL: ttl, Member: member}
	if user == "" {
		user = os.Getenv("ETCDCTL_USER")
	}
	if user != "" {
		cfg.Username, cfg.Password, _ = strings.Cut(user, ":")
		if password == "" {
			password = os.Getenv("ETCDCTL_PASSWORD")
		}
		if password != "" {
			cfg.Password = password
		}
	}
	if secure || cacert != "" || cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cacert != "" {
			pem, err := os.ReadFile(cacert)
			if err != nil {
				return nil, fmt.Errorf("--cacert: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", cacert)
			}
		}
		if (cert == "") != (key == "") {
			return nil, errors.New("--cert and --key go together")
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("--cert/--key: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// reportRunError prints a policy's diagnostics, or the error; it returns
// the exit status for it.
func reportRunError(std stdio, err error) int {
	var perr *daemon.PolicyError
	if errors.As(err, &perr) {
		(&lang.Printer{Sources: perr.Sources, Color: colorFor(std.err)}).Write(std.err, perr.Diagnostics)
		return exitUsage
	}
	fmt.Fprintf(std.err, "cloudspeak run: %v\n", err)
	return exitFail
}

// stateDir finds the state directory: flag, then CLOUDSPEAK_STATE, then
// $XDG_STATE_HOME/cloudspeak, then ~/.local/state/cloudspeak.
func stateDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if d := os.Getenv("CLOUDSPEAK_STATE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cloudspeak"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set --state or CLOUDSPEAK_STATE (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "cloudspeak"), nil
}

// newLogger is the daemon's log, as --log-format and --log-level ask.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: jsonout.LogAttr})), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// balancerListenFlag is --balancer-listen POOL=ADDR, repeatable.
func balancerListenFlag(fs *flag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.Func("balancer-listen", "`POOL=ADDR`: this daemon binds the pool's balancer (HAProxy's frontend, or balancer local) at ADDR, not at the policy's listen (repeatable)", func(v string) error {
		pool, addr, ok := strings.Cut(v, "=")
		if !ok || pool == "" {
			return fmt.Errorf("want POOL=HOST:PORT, not %q", v)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: want HOST:PORT, not %q", pool, addr)
		}
		out[pool] = addr
		return nil
	})
	return out
}

// notifySystemd tells systemd the daemon is ready (Type=notify), and, when
// the unit has WatchdogSec, feeds its watchdog while the daemon answers:
// an engine that hangs stops the pings, and systemd restarts it. Outside
// systemd it does nothing. The returned func stops the watchdog.
func notifySystemd(d *daemon.Daemon, log *slog.Logger) (stop func()) {
	if sent, err := sdnotify.Notify("READY=1"); err != nil {
		log.Warn("systemd: could not say READY=1", "err", err)
	} else if sent {
		log.Info("systemd: ready")
	}
	iv := sdnotify.WatchdogInterval()
	if iv <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by run: stop cancels and waits
		defer close(done)
		sdnotify.Watchdog(ctx, iv, func() bool { return answers(d, iv) })
	}()
	return func() { cancel(); <-done }
}

// answers says whether the daemon reports its status within limit; a
// daemon that does not is hung (its status call is left to end with it).
func answers(d *daemon.Daemon, limit time.Duration) bool {
	ok := make(chan struct{})
	go func() { d.Status(); close(ok) }() // ends when the daemon answers; a hung one is restarted by systemd
	select {
	case <-ok:
		return true
	case <-time.After(limit):
		return false
	}
}
