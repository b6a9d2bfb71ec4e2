package ssh

import (
	"fmt"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestFanout(t *testing.T) {
	c := sshdtest.StartT(t, 4)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	c.StopOne(2) // node2: nothing listens
	failPort := strconv.Itoa(c.Ports[1])
	var targets []NamedTarget
	for i := range c.Ports {
		targets = append(targets, NamedTarget{Name: fmt.Sprintf("node%d", i), Target: target(c, i)})
	}
	// The server's port is the 4th field of SSH_CONNECTION: node1 fails.
	cmd := `p=$(echo $SSH_CONNECTION | cut -d' ' -f4); echo "out from $p"; echo "err from $p" >&2; printf 'no newline'; [ "$p" != ` + failPort + ` ] || exit 3`
	var out safeBuffer
	results := d.Fanout(ctx, targets, cmd, 0, &LineWriter{W: &out})
	if len(results) != 4 {
		t.Fatalf("%d results", len(results))
	}
	for i, r := range results {
		if r.Name != targets[i].Name {
			t.Errorf("result %d is %s", i, r.Name)
		}
		switch i {
		case 1:
			if r.ExitStatus != 3 {
				t.Errorf("node1: status %d (%v), want 3", r.ExitStatus, r.Err)
			}
		case 2:
			if r.ExitStatus != -1 || r.Err == nil || !strings.Contains(r.Err.Error(), "connect") {
				t.Errorf("node2: status %d err %v, want a connect error", r.ExitStatus, r.Err)
			}
		default:
			if r.Err != nil || r.ExitStatus != 0 || r.Duration <= 0 {
				t.Errorf("%s: %+v", r.Name, r)
			}
		}
	}
	sum := Summary(results)
	if !regexp.MustCompile(`^2 of 4 failed: node1 exit 3; node2 connect \S+: .*refused`).MatchString(sum) {
		t.Errorf("summary %q", sum)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	line := regexp.MustCompile(`^node(\d) \| (out from (\d+)|err from (\d+)|no newline)$`)
	count := map[string]int{}
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %q is not one whole prefixed line", l)
			continue
		}
		count[m[1]]++
		if port := m[3] + m[4]; port != "" && port != strconv.Itoa(c.Ports[m[1][0]-'0']) {
			t.Errorf("line %q has another host's output", l)
		}
	}
	for _, n := range []string{"0", "1", "3"} {
		if count[n] != 3 {
			t.Errorf("node%s: %d lines, want 3:\n%s", n, count[n], out.String())
		}
	}
	if Summary(results[:1]) != "1 of 1 ok" {
		t.Errorf("summary of one success: %q", Summary(results[:1]))
	}
}

func TestFanoutBoundsParallelism(t *testing.T) {
	c := sshdtest.StartT(t, 2)
	d := newDialer(t, c, nil)
	var mu sync.Mutex
	running, most := 0, 0
	d.onFanout = func(delta int) {
		mu.Lock()
		defer mu.Unlock()
		running += delta
		most = max(most, running)
	}
	var targets []NamedTarget
	for i := range 12 { // several sessions per sshd, on its one connection
		targets = append(targets, NamedTarget{Name: fmt.Sprintf("n%d", i), Target: target(c, i%2)})
	}
	results := d.Fanout(testContext(t), targets, "sleep 0.1", 3, nil)
	if f := Failed(results); f != 0 {
		t.Fatalf("%s", Summary(results))
	}
	if most > 3 || most < 1 {
		t.Fatalf("%d ran at once, want at most 3", most)
	}
}

func TestLineWriterColor(t *testing.T) {
	var out safeBuffer
	lw := &LineWriter{W: &out, Color: true}
	b := lw.lines(lw.prefix("web1", 4, 0))
	b.Write([]byte("hel"))
	b.Write([]byte("lo\r\nwor"))
	b.Close()
	if got := out.String(); got != "\x1b[36mweb1 | \x1b[0mhello\n\x1b[36mweb1 | \x1b[0mwor\n" {
		t.Fatalf("%q", got)
	}
}
