// Package pgtest runs a private, throwaway PostgreSQL cluster from the server
// binaries installed on the machine. Tests use it through New/NewDatabase;
// `make run-server` uses Start with a persistent data directory.
//
// PostgreSQL refuses to run as root, so when the caller is root the cluster
// runs as an unprivileged system user (default "postgres") on directories that
// user owns.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
)

// InstallHint is part of every "binaries not found" error so the reader knows what to do.
const InstallHint = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`) " +
	"or point XTRACE_TEST_DATABASE_URL at an existing server"

// Superuser is the role initdb creates; it authenticates with trust on the private socket and loopback.
const Superuser = "xtrace"

// Options configure Start.
type Options struct {
	// DataDir holds the cluster. Empty: a temporary directory removed by Stop.
	// Non-empty: kept across runs (initdb runs only when it is empty).
	DataDir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps fsync on; throwaway test clusters turn it off for speed.
	Durable bool
	// RunAsUser is used when the process is root; default "postgres".
	RunAsUser string
	// Log receives the server's output; nil discards it.
	Log *os.File
	// Settings are extra server settings (name=value), e.g. for benchmarks.
	Settings []string
}

// Cluster is a running PostgreSQL server owned by this process.
type Cluster struct {
	BinDir  string
	DataDir string
	SockDir string
	Port    int

	cmd        *exec.Cmd
	args       []string // the postgres command line, for Restart
	log        io.Writer
	exited     chan struct{}
	tempRoot   string // removed on Stop when the cluster is throwaway
	credential *syscall.Credential
	logTail    devproc.Tail // the server's last output, for error messages
}

// URL returns a connection string for the given database over TCP on 127.0.0.1.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.Port, database)
}

// FindBinDir locates a directory holding initdb and postgres: PATH first, then
// `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) { return findBinDir("/usr/lib/postgresql/*/bin") }

func findBinDir(distroGlob string) (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Through symlinks (e.g. /usr/local/bin/initdb) to the installation,
		// which also holds the client tools such as pg_basebackup.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob(distroGlob)
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, dir := range matches {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH, via pg_config or under " + distroGlob + ": " + InstallHint)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initialises (if needed) and starts a cluster, waiting until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) { return start(ctx, opts, nil) }

// StartReplica makes a hot standby of c and starts it: pg_basebackup -R over a
// replication slot of its own into opts.DataDir (which must be empty; empty
// means a temporary directory), then the server, started as Start starts one,
// streaming from c. A standby refuses writes and follows c until it stops;
// Crash and Restart work on it as on any cluster. c needs nothing set for
// this: PostgreSQL's defaults (wal_level=replica, max_wal_senders=10,
// hot_standby=on) and initdb's pg_hba.conf (replication connections from
// 127.0.0.1 with trust) are what streaming replication needs.
func (c *Cluster) StartReplica(ctx context.Context, opts Options) (*Cluster, error) {
	return start(ctx, opts, c)
}

// start runs a new cluster: initdb, or a base backup of primary when it is set.
func start(ctx context.Context, opts Options, primary *Cluster) (_ *Cluster, err error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: binDir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	if os.Geteuid() == 0 {
		name := opts.RunAsUser
		if name == "" {
			name = "postgres"
		}
		if c.credential, err = credentialFor(name); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
		}
	}

	if c.tempRoot, err = os.MkdirTemp("", "xtrace-pg-"); err != nil {
		return nil, err
	}
	c.SockDir = filepath.Join(c.tempRoot, "sock")
	c.DataDir = opts.DataDir
	if c.DataDir == "" {
		c.DataDir = filepath.Join(c.tempRoot, "data")
	} else if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return nil, err
	}
	for _, dir := range []string{c.SockDir, c.DataDir} {
		if err := c.ownedDir(dir); err != nil {
			return nil, err
		}
	}
	if err := c.ownedDir(c.tempRoot); err != nil {
		return nil, err
	}
	if err := c.checkReachable(c.DataDir); err != nil {
		return nil, err
	}

	if _, statErr := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); statErr != nil {
		create := c.initdb
		if primary != nil {
			create = func(ctx context.Context) error { return c.baseBackup(ctx, primary) }
		}
		if err := create(ctx); err != nil {
			return nil, err
		}
	} else if primary != nil {
		return nil, fmt.Errorf("a replica needs an empty data directory; %s holds a cluster", c.DataDir)
	} else if pid := runningPostmaster(c.DataDir); pid > 0 {
		return nil, fmt.Errorf("a PostgreSQL server (pid %d) is already running on %s; stop it first", pid, c.DataDir)
	}

	c.Port = opts.Port
	if c.Port == 0 {
		if c.Port, err = devproc.FreePort(); err != nil {
			return nil, err
		}
	}
	c.args = serverArgs(c.DataDir, c.SockDir, c.Port, opts)
	c.log = &c.logTail
	if opts.Log != nil {
		c.log = io.MultiWriter(opts.Log, &c.logTail)
	}
	if err := c.launch(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// serverArgs is the postgres command line of a cluster.
func serverArgs(dataDir, sockDir string, port int, opts Options) []string {
	fsync := "off"
	if opts.Durable {
		fsync = "on"
	}
	args := []string{
		"-D", dataDir,
		"-p", strconv.Itoa(port),
		"-k", sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=" + fsync,
		"-c", "full_page_writes=" + fsync,
		"-c", "synchronous_commit=on",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
	}
	for _, kv := range opts.Settings {
		args = append(args, "-c", kv)
	}
	return args
}

// launch starts the postgres process and waits until it accepts connections.
func (c *Cluster) launch(ctx context.Context) error {
	c.exited = make(chan struct{})
	// Not bound to ctx: the server outlives Start; Stop ends it.
	c.cmd = c.command(context.Background(), filepath.Join(c.BinDir, "postgres"), c.args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// Stop the server if this process dies without running Stop.
	c.cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := c.cmd.Start(); err != nil {
		close(c.exited)
		return fmt.Errorf("start postgres: %w", err)
	}
	cmd, exited := c.cmd, c.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	return c.waitReady(ctx, 60*time.Second)
}

// Restart starts the server again, on the same data directory and port,
// after Crash (crash recovery runs) or Kill. A replica resumes streaming.
func (c *Cluster) Restart(ctx context.Context) error {
	select {
	case <-c.exited:
	default:
		return errors.New("pgtest: Restart of a cluster that is still running")
	}
	return c.launch(ctx)
}

func (c *Cluster) initdb(ctx context.Context) error {
	cmd := c.command(ctx, filepath.Join(c.BinDir, "initdb"),
		"-D", c.DataDir, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.DataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var replicaSlots atomic.Int64

// baseBackup copies primary into c.DataDir as a standby: -R writes
// primary_conninfo and standby.signal, -C -S a replication slot so that the
// primary keeps the WAL this replica has not received yet (across its restarts).
func (c *Cluster) baseBackup(ctx context.Context, primary *Cluster) error {
	slot := fmt.Sprintf("pgtest_replica_%d_%d", os.Getpid(), replicaSlots.Add(1))
	tool := filepath.Join(c.BinDir, "pg_basebackup")
	if !isExec(tool) {
		return fmt.Errorf("pg_basebackup not found in %s: %s", c.BinDir, InstallHint)
	}
	cmd := c.command(ctx, tool,
		"-D", c.DataDir, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", Superuser,
		"-R", "-X", "stream", "-c", "fast", "-C", "-S", slot, "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup of the cluster on port %d: %w: %s", primary.Port, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command builds an exec.Cmd that runs as the unprivileged user when needed.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.credential}
	// Own process group: a Ctrl-C in the terminal reaches the parent, which stops us in order.
	cmd.SysProcAttr.Setpgid = true
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// ownedDir creates dir (0700) and hands it to the unprivileged user if there is one.
func (c *Cluster) ownedDir(dir string) error {
	// Parents stay traversable for the unprivileged user.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if c.credential != nil {
		if err := os.Chown(dir, int(c.credential.Uid), int(c.credential.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// checkReachable fails clearly when the unprivileged user cannot traverse to dir
// (initdb's own message for this is obscure).
func (c *Cluster) checkReachable(dir string) error {
	if c.credential == nil {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		owned := false
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid == c.credential.Uid {
			owned = true
		}
		if !owned && st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("PostgreSQL runs as an unprivileged user (uid %d), which cannot enter %s (mode %v): choose a data directory below world-searchable directories, or `chmod o+x %s`",
				c.credential.Uid, d, st.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up (%v): %s", c.cmd.ProcessState, strings.TrimSpace(c.logTail.String()))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(pingCtx, c.URL("postgres"))
		if err == nil {
			err = conn.Ping(pingCtx)
			conn.Close(pingCtx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres on port %d not ready after %s: %v", c.Port, timeout, lastErr)
}

// Stop shuts the server down (fast shutdown) and removes temporary files.
// A persistent DataDir is kept.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // "fast" shutdown: roll back clients, checkpoint, exit
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if c.tempRoot != "" {
		_ = os.RemoveAll(c.tempRoot)
	}
}

// Crash kills the server the way a power cut would (immediate shutdown, no
// checkpoint); the next Start on the same DataDir runs crash recovery.
func (c *Cluster) Crash() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		<-c.exited
	}
}

// Pid is the postmaster's process id.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Exited is closed when the server process has exited.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

func credentialFor(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w (create it, e.g. by installing the postgresql package)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// runningPostmaster returns the pid recorded in postmaster.pid when that process is alive.
func runningPostmaster(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// ReachableTempDir makes a temporary directory for a persistent DataDir that
// the unprivileged server user can enter (t.TempDir's parent is private).
// The caller removes it.
func ReachableTempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// CreateDatabase creates an empty database in the cluster.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return execSQL(ctx, c.URL("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Vacuum runs VACUUM (ANALYZE) over a whole database, doing now the work a
// bulk load leaves for autovacuum.
func (c *Cluster) Vacuum(ctx context.Context, database string) error {
	return execSQL(ctx, c.URL(database), "VACUUM (ANALYZE)")
}

// SetAutovacuum turns autovacuum on or off for the whole cluster. Workers
// already running finish their table; Settle waits for them.
func (c *Cluster) SetAutovacuum(ctx context.Context, on bool) error {
	value := "off"
	if on {
		value = "on"
	}
	if err := execSQL(ctx, c.URL("postgres"), "ALTER SYSTEM SET autovacuum = "+value); err != nil {
		return err
	}
	return execSQL(ctx, c.URL("postgres"), "SELECT pg_reload_conf()")
}

// Settle brings c to rest for a measurement: a checkpoint writes the dirty
// buffers a bulk load left, the operating system writes them to disk, then
// it waits (at most timeout) until no autovacuum worker runs. It returns how
// long that took.
func (c *Cluster) Settle(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	if err := execSQL(ctx, c.URL("postgres"), "CHECKPOINT"); err != nil {
		return 0, err
	}
	// A checkpoint after a bulk load leaves gigabytes in the page cache for
	// the kernel to write back over the next half minute; whatever is timed
	// then competes with that writeback.
	syscall.Sync()
	for {
		var workers int
		if err := queryOnce(ctx, c.URL("postgres"), "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'", nil, &workers); err != nil {
			return 0, err
		}
		if workers == 0 || time.Since(began) > timeout {
			return time.Since(began), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
