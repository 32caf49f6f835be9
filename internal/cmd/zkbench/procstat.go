package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat. USER_HZ is
// 100 on every Linux architecture's user ABI, whatever the kernel's HZ.
const clockTick = 10 * time.Millisecond

// procStat is what the bench reads from one /proc/<pid>/stat line.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime of all the process's threads
}

// parseProcStat parses a /proc/<pid>/stat line. The command name, field 2,
// is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseProcStat(line []byte) (procStat, error) {
	end := bytes.LastIndexByte(line, ')')
	if end < 0 {
		return procStat{}, errors.New("zkbench: /proc stat line has no command name")
	}
	// After the name: state(3) ppid(4) … utime(14) stime(15).
	f := bytes.Fields(line[end+1:])
	const ppidField, utimeField, stimeField = 1, 11, 12
	if len(f) <= stimeField {
		return procStat{}, fmt.Errorf("zkbench: /proc stat line has %d fields after the name, want at least %d", len(f), stimeField+1)
	}
	ppid, err := strconv.Atoi(string(f[ppidField]))
	if err != nil {
		return procStat{}, fmt.Errorf("zkbench: /proc stat ppid: %w", err)
	}
	utime, err := strconv.ParseUint(string(f[utimeField]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("zkbench: /proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(string(f[stimeField]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("zkbench: /proc stat stime: %w", err)
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, nil
}

// processTreeCPU returns the CPU time pid and all its live descendants
// have used so far. NSD serves from a child process and CoreDNS or Knot
// from threads; counting the tree measures every server the same way.
func processTreeCPU(pid int) (time.Duration, error) {
	stats, err := readAllProcStats()
	if err != nil {
		return 0, err
	}
	if _, ok := stats[pid]; !ok {
		return 0, fmt.Errorf("zkbench: process %d is not running", pid)
	}
	return treeCPU(stats, pid), nil
}

// treeCPU sums the CPU of root and its descendants in stats.
func treeCPU(stats map[int]procStat, root int) time.Duration {
	children := map[int][]int{}
	for pid, s := range stats {
		children[s.ppid] = append(children[s.ppid], pid)
	}
	var total time.Duration
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		total += stats[pid].cpu
		queue = append(queue, children[pid]...)
	}
	return total
}

func readAllProcStats() (map[int]procStat, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	stats := make(map[int]procStat, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		line, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		s, err := parseProcStat(line)
		if err != nil {
			return nil, fmt.Errorf("zkbench: %s/stat: %w", d, err)
		}
		stats[pid] = s
	}
	return stats, nil
}

// parseStatusMemory returns a field such as VmRSS or VmHWM of a
// /proc/<pid>/status file, in bytes.
func parseStatusMemory(status []byte, field string) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := bytes.Fields(val)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("zkbench: /proc status %s: unexpected value %q", field, val)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("zkbench: /proc status %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("zkbench: /proc status has no %s line", field)
}

// processMemory returns a /proc/<pid>/status memory field in bytes.
func processMemory(pid int, field string) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("zkbench: memory of process %d: %w", pid, err)
	}
	return parseStatusMemory(status, field)
}

// cpuSteal reads how long the hypervisor has kept CPU core from this
// machine since boot (the steal column of /proc/stat): time in which
// whatever runs on that core stands still, whoever it is. A negative core
// means all of them together.
func cpuSteal(core int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("zkbench: %w", err)
	}
	return parseCPUSteal(b, core)
}

// parseCPUSteal finds core's line in /proc/stat ("cpuN user nice system
// idle iowait irq softirq steal ...", "cpu" for the sum of all) and
// returns its steal time.
func parseCPUSteal(stat []byte, core int) (time.Duration, error) {
	label := []byte("cpu")
	if core >= 0 {
		label = strconv.AppendInt(label, int64(core), 10)
	}
	const stealField = 8
	for line := range bytes.SplitSeq(stat, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) == 0 || !bytes.Equal(f[0], label) {
			continue
		}
		if len(f) <= stealField {
			return 0, fmt.Errorf("zkbench: /proc/stat line %s has no steal column", label)
		}
		ticks, err := strconv.ParseInt(string(f[stealField]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("zkbench: /proc/stat %s steal: %w", label, err)
		}
		return time.Duration(ticks) * clockTick, nil
	}
	return 0, fmt.Errorf("zkbench: /proc/stat has no line for %s", label)
}
