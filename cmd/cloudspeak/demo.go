package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudspeak/cloudspeak/builtins/demo"
)

var demoVerb = &verb{
	name:    "demo-server",
	summary: "run the demo workload (HTTP /health, /work?ms=N, /fail)",
	usage: `Usage: cloudspeak demo-server [--listen ADDR] [--name NAME]

Serves a small HTTP workload, for examples and tests: /health answers,
/work?ms=N burns N milliseconds of CPU (at most 10s), /fail makes the
process exit with status 1, as a crash would. SIGTERM and SIGINT stop it
gracefully.

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
