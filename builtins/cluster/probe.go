package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// probe says why an etcd endpoint that did not answer cannot be used,
// when a connection of its own shows it: nothing listening, or a TLS
// handshake refused (an unknown CA, no client certificate). gRPC retries
// those quietly until its deadline, which says only "deadline exceeded".
func probe(endpoint string, tc *tls.Config) error {
	conn, err := net.DialTimeout("tcp", endpoint, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if tc == nil {
		return nil
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(endpoint)
	}
	tc.NextProtos = []string{"h2"}
	c := tls.Client(conn, tc)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	// With TLS 1.3 the server judges the client's certificate after the
	// handshake: its refusal comes with the first read.
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("TLS: %w", err)
		}
	}
	return nil
}

// probeAll probes every endpoint and says what it found, or "".
func probeAll(endpoints []string, tc *tls.Config) string {
	var found []string
	for _, ep := range endpoints {
		if err := probe(ep, tc); err != nil {
			found = append(found, ep+": "+err.Error())
		}
	}
	if len(found) == 0 {
		return ""
	}
	hint := "\nhint: check the endpoints; for TLS use etcds:// with --cacert, and --cert and --key if etcd asks for a client certificate"
	return " (" + strings.Join(found, "; ") + ")" + hint
}
