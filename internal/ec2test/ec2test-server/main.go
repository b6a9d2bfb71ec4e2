// Command ec2test-server runs the EC2 Query-API test server
// (internal/ec2test) on 127.0.0.1 until SIGINT or SIGTERM, for benchmarks
// and CLI test scripts. Its first line of output is its URL:
//
//	ec2test-server -listen 127.0.0.1:0 -boot 300ms -eip eipalloc-1=127.0.0.1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
)

// eips collects repeated -eip ALLOC=IP flags.
type eips map[string]string

func (e eips) String() string { return fmt.Sprint(map[string]string(e)) }

func (e eips) Set(v string) error {
	alloc, ip, ok := strings.Cut(v, "=")
	if !ok || alloc == "" || ip == "" {
		return fmt.Errorf("want ALLOCATION-ID=IP (eipalloc-1=127.0.0.1), got %q", v)
	}
	e[alloc] = ip
	return nil
}

func main() {
	addresses := eips{}
	var opts ec2test.Options
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (127.0.0.1 only)")
	flag.DurationVar(&opts.BootDelay, "boot", 300*time.Millisecond, "how long instances stay pending")
	flag.DurationVar(&opts.TerminateDelay, "terminate", 300*time.Millisecond, "how long instances stay shutting-down")
	flag.Var(addresses, "eip", "an Elastic IP, ALLOCATION-ID=IP (repeatable)")
	flag.StringVar(&opts.AccessKeyID, "access-key", "", "the only access key id accepted (default: any)")
	flag.IntVar(&opts.Capacity, "capacity", 0, "most instances pending or running at once (0: no limit)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ec2test-server: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	opts.Addresses = addresses

	srv := ec2test.New(opts)
	if err := srv.Start(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "ec2test-server:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Close()
}
