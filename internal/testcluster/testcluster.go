// Package testcluster starts real Kubernetes control planes for tests:
//
//   - StartAPIServer: envtest (kube-apiserver + etcd), for controller tests;
//   - StartSimulated: the same plus kube-controller-manager, kube-scheduler and
//     kwok with one fake Node, so Deployments, ReplicaSets and Pods behave as in
//     a cluster (pods are "run" by kwok), for end-to-end tests.
//
// The binaries are built from source by hack/build-k8s-binaries.sh into
// bin/k8s/<version>/; KUBEBUILDER_ASSETS points at that directory (the
// Makefile sets it), or it is found relative to the module root.
package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
)

// KubernetesVersion is the version hack/build-k8s-binaries.sh builds by default.
const KubernetesVersion = "1.37.2"

// BuildHint tells the reader how to get the binaries.
const BuildHint = "run `make k8s-binaries` (builds kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok into bin/k8s/" +
	KubernetesVersion + ") and set KUBEBUILDER_ASSETS to that directory, or run the tests with `make test`"

// AssetsDir returns the directory holding the control-plane binaries.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := devproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "k8s", KubernetesVersion), nil
}

func binary(t testing.TB, name string) string {
	t.Helper()
	dir, err := AssetsDir()
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	path := filepath.Join(dir, name)
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		t.Fatalf("testcluster: %s not found in %s: %s", name, dir, BuildHint)
	}
	return path
}

// APIServer is a running envtest control plane.
type APIServer struct {
	Env    *envtest.Environment
	Config *rest.Config
	// KubeconfigPath is an admin (system:masters) kubeconfig file for other processes.
	KubeconfigPath string
}

// Options for StartAPIServer.
type Options struct {
	// CRDDirectoryPaths are installed before the function returns.
	CRDDirectoryPaths []string
}

// StartAPIServer starts kube-apiserver and etcd and stops them when the test ends.
func StartAPIServer(t testing.TB, opts Options) *APIServer {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Kubernetes binaries (bin/k8s): make test builds and runs them")
	}
	api, stop, err := Start(opts, t.TempDir())
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(stop)
	return api
}

// Start is StartAPIServer for TestMain (one control plane for a whole
// package): the caller runs stop. dir receives the admin kubeconfig.
func Start(opts Options, dir string) (*APIServer, func(), error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if st, err := os.Stat(filepath.Join(assets, name)); err != nil || st.IsDir() {
			return nil, nil, fmt.Errorf("%s not found in %s: %s", name, assets, BuildHint)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing:    len(opts.CRDDirectoryPaths) > 0,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // envtest leaves its processes running when, e.g., installing a CRD fails
		return nil, nil, fmt.Errorf("start envtest: %w", err)
	}
	stop := func() { _ = env.Stop() }
	admin, err := env.ControlPlane.AddUser(envtest.User{Name: "testcluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		stop()
		return nil, nil, err
	}
	return &APIServer{Env: env, Config: cfg, KubeconfigPath: path}, stop, nil
}

// FakeNodeName is the node kwok manages in a simulated cluster.
const FakeNodeName = "kwok-node-0"

// StartSimulated starts an API server plus kube-controller-manager,
// kube-scheduler and kwok, and registers one fake Node with room for 110 pods.
func StartSimulated(t testing.TB, opts Options) *APIServer {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Kubernetes binaries (bin/k8s): make test builds and runs them")
	}
	api := StartAPIServer(t, opts)
	logDir := t.TempDir()
	kc := api.KubeconfigPath
	startProcess(t, logDir, binary(t, "kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--controllers=*,-serviceaccount-token", "--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false", "--v=0")
	startProcess(t, logDir, binary(t, "kube-scheduler"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--leader-elect=false", "--secure-port=0", "--v=0")
	startProcess(t, logDir, binary(t, "kwok"),
		"--kubeconfig="+kc, "--manage-all-nodes=true", "--config="+binary(t, "kwok-stages.yaml"))

	cs := kubernetes.NewForConfigOrDie(api.Config)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": FakeNodeName, "kubernetes.io/os": "linux", "type": "kwok"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110"),
			},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110"),
			},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testcluster: create fake node: %v", err)
	}
	// kwok marks the node Ready; until then the scheduler would not place pods.
	if err := Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, FakeNodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("testcluster: fake node never became Ready: %v (process logs in %s)", err, logDir)
	}
	return api
}

// startProcess runs a control-plane component until the test ends. Its output
// goes to a log file that is printed if the test fails.
func startProcess(t testing.TB, logDir, path string, args ...string) {
	t.Helper()
	name := filepath.Base(path)
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testcluster: start %s: %v", name, err)
	}
	var once sync.Once
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		once.Do(func() {
			devproc.StopWithin(cmd, syscall.SIGTERM, done, 10*time.Second)
			logFile.Close()
			if t.Failed() {
				if b, err := os.ReadFile(logPath); err == nil {
					t.Logf("--- %s log (last 3000 bytes) ---\n%s", name, tail(string(b), 3000))
				}
			}
		})
	})
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Poll calls cond every interval until it returns true, returns an error, or ctx ends.
// Transient errors from cond are kept and reported if the context ends first.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
