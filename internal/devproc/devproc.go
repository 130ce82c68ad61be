// Package devproc builds and runs this module's binaries for tests, the
// benchmark and `make run-server`: build a package, pick a free port, start a
// process that dies with its parent, wait until an HTTP endpoint answers.
package devproc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleRoot finds the directory holding go.mod, from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles pkg (relative to the module root, e.g. "./server/cmd/xtrace")
// into dir and returns the binary's path.
func Build(pkg, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	if pkg == "." {
		out = filepath.Join(dir, "manager")
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Command returns a command that is killed when this process dies.
func Command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Stop sends SIGTERM and waits for the process to exit.
func Stop(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// StopWithin sends sig and waits for exited (closed when cmd.Wait returns)
// for at most grace, then kills the process and waits for it.
func StopWithin(cmd *exec.Cmd, sig os.Signal, exited <-chan struct{}, grace time.Duration) {
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// WaitOK polls url until it answers 200, the timeout passes, or exited is closed.
func WaitOK(url string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error = errors.New("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited before %s answered", url)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}

// Tail keeps the last Max bytes (4 KiB when zero) written to it: a child
// process's output, for error messages.
type Tail struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	limit := t.Max
	if limit <= 0 {
		limit = 4096
	}
	if over := len(t.buf) - limit; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// ParseMetrics reads a Prometheus text exposition into "name{labels}" → value
// (comments and unparsable lines are skipped).
func ParseMetrics(body []byte) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
			out[line[:i]] = v
		}
	}
	return out
}

// ProcStat is what /proc/<pid>/stat says of a process (Linux): its parent,
// and its CPU seconds (user + system), its own and its exited children's.
type ProcStat struct {
	PPID             int
	CPU, ChildrenCPU float64
}

// ReadProcStat reads /proc/<pid>/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	// The fields after the command, which may hold spaces and parentheses:
	// state ppid … utime(14) stime(15) cutime(16) cstime(17).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 > len(b) {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 15 {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	seconds := func(k int) float64 { v, _ := strconv.ParseFloat(f[k], 64); return v / 100 } // in USER_HZ
	return ProcStat{PPID: ppid, CPU: seconds(11) + seconds(12), ChildrenCPU: seconds(13) + seconds(14)}, nil
}
