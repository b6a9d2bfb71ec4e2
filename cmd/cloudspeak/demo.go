package main

import (
	"context"
	"fmt"
	neturl "net/url"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/demo"
)

var demoVerb = &verb{
	name:    "demo-server",
	summary: "run the demo workload (HTTP /health, /work?ms=N, /fail)",
	usage: `Usage: cloudspeak demo-server [--listen ADDR] [--name NAME]

Serves a small HTTP workload, for examples and tests: /health answers,
/work?ms=N burns N milliseconds of CPU (at most 10s), /fail makes the
process exit with status 1, as a crash would, and /metrics counts the
requests for Prometheus. Every answer names the server in its
Demo-Instance header (what cloudspeak demo-load counts). SIGTERM and
SIGINT stop it gracefully.

The default address is $IP:$PORT as the local provider sets them, else
127.0.0.1:8080.`,
}

func init() {
	demoVerb.run = func(args []string, std stdio) int {
		fs := flags(demoVerb, std)
		def := "127.0.0.1:8080"
		if ip, port := os.Getenv("IP"), os.Getenv("PORT"); ip != "" && port != "" {
			def = ip + ":" + port
		}
		listen := fs.String("listen", def, "the `ADDR` to serve on")
		name := fs.String("name", os.Getenv("CLOUDSPEAK_INSTANCE"), "the name /health reports")
		if st := parseFlags(fs, demoVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() > 0 {
			return usageError(std, demoVerb, "takes no arguments")
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		fmt.Fprintf(std.err, "demo-server listening on %s\n", *listen)
		if err := demo.Serve(ctx, *listen, *name); err != nil {
			fmt.Fprintf(std.err, "cloudspeak demo-server: %v\n", err)
			return exitFail
		}
		return exitOK
	}
}

var demoLoadVerb = &verb{
	name:    "demo-load",
	summary: "make demo servers busy, and count who answered",
	usage: `Usage: cloudspeak demo-load [--clients N] [--for D] [--every D] URL

Sends GET requests to URL (http:// may be left out) from N clients at
once, each sending its next request as soon as its last one is answered,
for D, and prints every --every how many were answered, by which demo
server (each names itself in its Demo-Instance header), and how many
failed; then the totals. Ctrl-C stops it early.

  cloudspeak demo-load --for 2m '127.0.0.1:8000/work?ms=200'

The default is twice as many clients as this machine has cores, so that
/work keeps every core busy; --for defaults to 1m, --every to 5s.

Exit status: 0 if every request was answered with 200, 1 if one failed,
2 on bad usage.`,
}

func init() {
	demoLoadVerb.run = func(args []string, std stdio) int {
		fs := flags(demoLoadVerb, std)
		clients := fs.Int("clients", 2*goruntime.NumCPU(), "how many requests are under way at once")
		d := fs.Duration("for", time.Minute, "how long to send requests")
		every := fs.Duration("every", 5*time.Second, "how often to print the counts")
		if st := parseFlags(fs, demoLoadVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() != 1 {
			return usageError(std, demoLoadVerb, "takes one URL")
		}
		if *clients < 1 || *d <= 0 || *every <= 0 {
			return usageError(std, demoLoadVerb, "--clients, --for and --every must be positive")
		}
		url := fs.Arg(0)
		if !strings.Contains(url, "://") {
			url = "http://" + url
		}
		if u, err := neturl.Parse(url); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			return usageError(std, demoLoadVerb, "%q is not an http URL", fs.Arg(0))
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		t := demo.Load{URL: url, Clients: *clients, For: *d, Every: *every, Out: std.out}.Run(ctx)
		if t.Failed > 0 {
			return exitFail
		}
		return exitOK
	}
}
