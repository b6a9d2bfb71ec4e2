package local

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procStat is what the runtime needs from /proc/PID/stat.
type procStat struct {
	pid       int
	state     byte
	pgrp      int
	ticks     uint64 // utime + stime, in clock ticks
	startTime uint64 // in clock ticks since boot: with the PID, names a process for good
	rssPages  int64
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc.
const clockTicks = 100

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(data)
}

// parseStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(data []byte) (procStat, error) {
	open := bytes.IndexByte(data, '(')
	close := bytes.LastIndexByte(data, ')')
	if open < 0 || close < open {
		return procStat{}, fmt.Errorf("malformed stat")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat pid")
	}
	f := strings.Fields(string(data[close+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("short stat")
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(f[i-3], 10, 64); return n }
	pgrp, _ := strconv.Atoi(f[5-3])
	rss, _ := strconv.ParseInt(f[24-3], 10, 64)
	return procStat{pid: pid, state: f[0][0], pgrp: pgrp, ticks: num(14) + num(15), startTime: num(22), rssPages: rss}, nil
}

// alive reports whether pid is the process that started at startTime and
// has not exited (a zombie has exited).
func alive(pid int, startTime uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.startTime == startTime && st.state != 'Z' && st.state != 'X'
}

// groups sums CPU ticks and resident pages per process group, over every
// process on the machine: one pass over /proc for a whole pool.
func groups() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.state == 'Z' {
			continue // gone meanwhile, or a zombie
		}
		g := out[st.pgrp]
		g.ticks += st.ticks
		g.rssPages += st.rssPages
		out[st.pgrp] = g
	}
	return out, nil
}

// memTotal returns the machine's memory in bytes.
func memTotal() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

// groupMembers returns the live (not zombie) processes of a process
// group: zombies are left out, as a parent that does not reap (an init
// in a container) may keep them for good.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgid && st.state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}
