package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/internal/testcluster"
)

// The integration tests share one real API server (envtest) and one running
// manager, started by the first test that needs them; each test works in its
// own namespace, so they run in parallel. k8s asserts through a client that
// reads the API server directly, not the manager's cache. Unit tests of this
// package (and `go test -short`) start nothing.
var (
	k8s     client.Client
	scheme  = runtime.NewScheme()
	nsCount atomic.Int32

	clusterOnce sync.Once
	clusterErr  error
	stopCluster = func() {}
)

const testImage = "ghcr.io/xtrace-dev/xtrace:v0.1.0"

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	code := m.Run()
	stopCluster()
	os.Exit(code)
}

// startCluster starts envtest and the manager with the reconciler, as main.go configures it.
func startCluster() error {
	dir, err := os.MkdirTemp("", "xtrace-envtest-")
	if err != nil {
		return err
	}
	api, stopAPI, err := testcluster.Start(testcluster.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}}, dir)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("controllers tests: %w", err)
	}
	stop := func() { stopAPI(); os.RemoveAll(dir) }
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel())))
	opts := ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}}
	NarrowCaching(&opts)
	mgr, err := ctrl.NewManager(api.Config, opts)
	if err == nil {
		err = (&XTraceReconciler{Client: mgr.GetClient(), Scheme: scheme, Recorder: mgr.GetEventRecorderFor("xtrace-operator"),
			DefaultImage: testImage}).SetupWithManager(mgr)
	}
	if err == nil {
		k8s, err = client.New(api.Config, client.Options{Scheme: scheme})
	}
	if err != nil {
		stop()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	stopCluster = func() { cancel(); <-done; stop() }
	return nil
}

func zapLevel() zapLevelT { return zapLevelT(2) } // errors only

// namespace creates a namespace for one test, starting the shared control
// plane on first use (skipped with -short: it needs the Kubernetes binaries).
func namespace(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Kubernetes API server (envtest); skipped with -short")
	}
	clusterOnce.Do(func() { clusterErr = startCluster() })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	name := fmt.Sprintf("t%d-%d", nsCount.Add(1), time.Now().UnixNano()%100000)
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}
