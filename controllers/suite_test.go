package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
// manager; each test works in its own namespace. k8s asserts through a client
// that reads the API server directly, not the manager's cache.
var (
	k8s     client.Client
	scheme  = runtime.NewScheme()
	nsCount atomic.Int32
)

const testImage = "ghcr.io/xtrace-dev/xtrace:v0.1.0"

func TestMain(m *testing.M) {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	dir, _ := os.MkdirTemp("", "xtrace-envtest-")
	api, stop, err := testcluster.Start(testcluster.Options{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}}, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers tests:", err)
		os.Exit(1)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel())))
	mgr, err := ctrl.NewManager(api.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := (&XTraceReconciler{Client: mgr.GetClient(), Scheme: scheme, Recorder: mgr.GetEventRecorderFor("xtrace-operator"),
		DefaultImage: testImage}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	k8s, _ = client.New(api.Config, client.Options{Scheme: scheme})
	code := m.Run()
	cancel()
	<-done
	stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func zapLevel() zapLevelT { return zapLevelT(2) } // errors only

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
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
