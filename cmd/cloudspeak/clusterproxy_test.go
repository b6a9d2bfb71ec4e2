package main

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// etcdProxy stands between one daemon and etcd: a TCP forwarder for each
// etcd member, which the test can cut (every connection closed, new ones
// closed at once) to cut the daemon off from etcd alone, and restore.
type etcdProxy struct {
	lns     []net.Listener
	targets []string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// newEtcdProxy forwards to endpoints (host:port); it is closed when the
// test ends.
func newEtcdProxy(t testing.TB, endpoints []string) *etcdProxy {
	t.Helper()
	p := &etcdProxy{targets: endpoints, conns: map[net.Conn]bool{}}
	for range endpoints {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		p.lns = append(p.lns, ln)
	}
	for i, ln := range p.lns {
		p.wg.Add(1)
		go func() { // owned by the proxy: ends when Close closes ln
			defer p.wg.Done()
			p.serve(ln, p.targets[i])
		}()
	}
	t.Cleanup(p.Close)
	return p
}

// URL is the cluster named name through the proxy, as --cluster takes it.
func (p *etcdProxy) URL(name string) string {
	var hps []string
	for _, ln := range p.lns {
		hps = append(hps, ln.Addr().String())
	}
	return "etcd://" + strings.Join(hps, ",") + "/" + name
}

func (p *etcdProxy) serve(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", target)
		if err != nil { // that etcd member is down
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut || p.conns == nil {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) { // owned by the proxy: ends when either side closes
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// Cut closes every connection and refuses new ones until Restore.
func (p *etcdProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore forwards again.
func (p *etcdProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops the proxy and waits for its goroutines.
func (p *etcdProxy) Close() {
	for _, ln := range p.lns {
		ln.Close()
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
