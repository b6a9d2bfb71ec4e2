package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// apiTimeout bounds one runtime API exchange when the caller's context has
// no earlier deadline: HAProxy answers in microseconds, so a socket that
// says nothing for this long belongs to a process that is stuck or gone.
const apiTimeout = 5 * time.Second

// command sends one line to an HAProxy runtime API socket (the admin stats
// socket, or the master socket) and returns the whole answer. The socket is
// in non-interactive mode: HAProxy answers and closes, so the answer ends at
// EOF. A line holds one command: names cannot smuggle in another.
func command(ctx context.Context, sock, line string) (string, error) {
	if strings.ContainsAny(line, "\n\r;") {
		return "", fmt.Errorf("runtime API command %q: one command per call", line)
	}
	return send(ctx, sock, line)
}

func send(ctx context.Context, sock, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", err
	}
	// The master socket answers once it sees the end of the input; the
	// stats socket does not mind either way.
	if uc, ok := conn.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("runtime API %q: %w", line, ctx.Err())
		}
		return "", err
	}
	return string(out), nil
}

// change sends a command that changes something and turns HAProxy's
// answer into an error when it refused. The runtime API has no status
// codes: success is an empty answer or one of a few confirmations, and
// anything else is HAProxy explaining why not.
func change(ctx context.Context, sock, line string) error {
	out, err := command(ctx, sock, line)
	if err != nil {
		return err
	}
	msg := strings.TrimSpace(out)
	switch msg {
	case "", "New server registered.", "Server deleted.":
		return nil
	}
	return &apiError{Command: line, Msg: msg}
}

// apiError is HAProxy refusing a runtime API command.
type apiError struct {
	Command string
	Msg     string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("haproxy refused %q: %s", e.Command, strings.ReplaceAll(e.Msg, "\n", " "))
}

// isAPIError reports whether HAProxy refused the command with a message
// containing substr.
func isAPIError(err error, substr string) bool {
	var ae *apiError
	return errors.As(err, &ae) && strings.Contains(ae.Msg, substr)
}

// stat is one row of `show stat`: a frontend, a backend or a server.
type stat struct {
	Proxy, Server string // pxname, svname (FRONTEND, BACKEND or the server's name)
	Status        string // UP, DOWN, DRAIN, MAINT, "UP 1/3", "no check", …
	Sessions      int64  // scur
	Queue         int64  // qcur
	Total         int64  // stot: sessions (in http mode, requests) since start
	Requests      int64  // req_tot, http mode
	RTime, TTime  int64  // average response and total time of the last 1024 requests, ms
	Weight        int64
}

// up reports whether HAProxy would send new work to the row's server:
// UP (also "UP 2/3" going down), or no check at all.
func (s stat) up() bool {
	return s.Status == "no check" || s.Status == "UP" || strings.HasPrefix(s.Status, "UP ")
}

// showStat reads and parses `show stat`.
func showStat(ctx context.Context, sock string) ([]stat, error) {
	out, err := command(ctx, sock, "show stat")
	if err != nil {
		return nil, err
	}
	return parseStat(out)
}

// parseStat parses the CSV of `show stat`, by its header's field names
// (their order and number grow between HAProxy versions).
func parseStat(out string) ([]stat, error) {
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) == 0 || !strings.HasPrefix(rows[0][0], "# ") {
		return nil, fmt.Errorf("show stat: unexpected answer %.80q", out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	for _, need := range []string{"pxname", "svname", "status", "scur", "stot"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: no %s column", need)
		}
	}
	field := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	num := func(row []string, name string) int64 {
		n, _ := strconv.ParseInt(field(row, name), 10, 64) // empty: not applicable
		return n
	}
	var stats []stat
	for _, row := range rows[1:] {
		if len(row) < 2 {
			continue
		}
		stats = append(stats, stat{
			Proxy: field(row, "pxname"), Server: field(row, "svname"), Status: field(row, "status"),
			Sessions: num(row, "scur"), Queue: num(row, "qcur"), Total: num(row, "stot"), Requests: num(row, "req_tot"),
			RTime: num(row, "rtime"), TTime: num(row, "ttime"), Weight: num(row, "weight"),
		})
	}
	return stats, nil
}

// proc is one line of the master's `show proc`.
type proc struct {
	PID     int
	Type    string // master, worker
	Reloads int
	Failed  int // the master's failed reloads
}

// showProc asks the master socket which processes it runs.
func showProc(ctx context.Context, masterSock string) ([]proc, error) {
	out, err := command(ctx, masterSock, "show proc")
	if err != nil {
		return nil, err
	}
	return parseProc(out)
}

// parseProc parses `show proc`:
//
//	#<PID>          <type>          <reloads>       <uptime>        <version>
//	2027            master          1 [failed: 0]   0d00h00m01s     2.6.12
//	# workers
//	2051            worker          0               0d00h00m01s     2.6.12
func parseProc(out string) ([]proc, error) {
	var procs []proc
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		p := proc{PID: pid, Type: f[1]}
		p.Reloads, _ = strconv.Atoi(f[2])
		if len(f) >= 5 && f[3] == "[failed:" {
			p.Failed, _ = strconv.Atoi(strings.TrimSuffix(f[4], "]"))
		}
		procs = append(procs, p)
	}
	if len(procs) == 0 || procs[0].Type != "master" {
		return nil, fmt.Errorf("show proc: unexpected answer %.120q", out)
	}
	return procs, nil
}
