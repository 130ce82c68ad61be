package e2e

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers/builders"
	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/testcluster"
)

// Unrelated Secrets the measurement puts in the API server.
const (
	unrelatedSecrets    = 2000
	unrelatedSecretSize = 4 << 10
)

// TestSecretCacheMemory measures the manager binary's memory (heap in use and
// RSS, from its own /metrics) on envtest, with one XTrace, before and after
// 2,000 Secrets of 4 KiB that no XTrace references are created. A manager that
// caches every Secret grows by at least their data (8 MiB); this one caches
// Secrets' metadata only, and the test fails if the heap grows by that much.
//
//	XTRACE_MEASURE_SECRET_CACHE=1 go test -count=1 -run TestSecretCacheMemory -v ./test/e2e/
//
// MANAGER_BIN=/path/to/manager measures another build (e.g. of an older
// commit) instead of this tree's; the figures are logged, nothing asserted.
func TestSecretCacheMemory(t *testing.T) {
	if os.Getenv("XTRACE_MEASURE_SECRET_CACHE") == "" {
		t.Skip("a measurement: set XTRACE_MEASURE_SECRET_CACHE=1 to run it")
	}
	api := testcluster.StartAPIServer(t, crds)
	k8s := newClient(t, api)

	manager, other := os.LookupEnv("MANAGER_BIN")
	if !other {
		manager = build(t, ".")
	}
	metricsPort := freePort(t)
	cmd := devproc.Command(manager, "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(freePort(t)), "--default-server-image=ghcr.io/xtrace-dev/xtrace:v0.1.0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+api.KubeconfigPath, "WATCH_NAMESPACE=")
	logs, _ := os.Create(filepath.Join(t.TempDir(), "manager.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devproc.Stop(cmd) })

	// One XTrace, so the controller and its watches are running.
	for _, ns := range []string{"app", "unrelated"} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	db := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pg-app", Namespace: "app"}, StringData: map[string]string{"uri": "postgres://app:pw@pg-rw:5432/app"}}
	if err := k8s.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	x := &v1alpha1.XTrace{ObjectMeta: metav1.ObjectMeta{Name: "obs", Namespace: "app"},
		Spec: v1alpha1.XTraceSpec{Database: v1alpha1.DatabaseSpec{URLSecretRef: &v1alpha1.SecretKeyRef{Name: "pg-app", Key: "uri"}}}}
	if err := k8s.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	poll(t, "the XTrace reconciled", 60*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(x), x); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(x.Status.Conditions, "Reconciled"); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %+v", x.Status.Conditions)
		}
		return nil
	})
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	heapBefore, rssBefore := settledMemory(t, metricsURL)

	createUnrelatedSecrets(t, k8s, "unrelated")
	// One watch stream delivers Secret events in order: once the manager has
	// acted on a change made after the 2,000, it has received all of them.
	hash := configHash(t, k8s, x)
	db.StringData = map[string]string{"uri": "postgres://app:rotated@pg-rw:5432/app"}
	if err := k8s.Update(ctx, db); err != nil {
		t.Fatal(err)
	}
	poll(t, "the manager to see the rotation made after the unrelated Secrets", 60*time.Second, func() error {
		if configHash(t, k8s, x) == hash {
			return fmt.Errorf("config hash unchanged")
		}
		return nil
	})
	heapAfter, rssAfter := settledMemory(t, metricsURL)

	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	t.Logf("manager %s", manager)
	t.Logf("heap in use: %s with 1 XTrace, %s with %d unrelated Secrets of %d KiB (+%s)",
		mib(heapBefore), mib(heapAfter), unrelatedSecrets, unrelatedSecretSize>>10, mib(heapAfter-heapBefore))
	t.Logf("RSS:         %s with 1 XTrace, %s with %d unrelated Secrets of %d KiB (+%s)",
		mib(rssBefore), mib(rssAfter), unrelatedSecrets, unrelatedSecretSize>>10, mib(rssAfter-rssBefore))
	if data := float64(unrelatedSecrets * unrelatedSecretSize); !other && heapAfter-heapBefore >= data {
		t.Errorf("the heap grew by %s, at least the unrelated Secrets' data (%s): the manager caches Secret data", mib(heapAfter-heapBefore), mib(data))
	}
}

func createUnrelatedSecrets(t *testing.T, k8s client.Client, ns string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, unrelatedSecrets)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				data := make([]byte, unrelatedSecretSize)
				_, _ = rand.Read(data)
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%04d", i), Namespace: ns},
					Data: map[string][]byte{"blob": data}}
				if err := k8s.Create(ctx, s); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range unrelatedSecrets {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func configHash(t *testing.T, k8s client.Client, x *v1alpha1.XTrace) string {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: x.Name}, dep); err != nil {
		t.Fatal(err)
	}
	return dep.Spec.Template.Annotations[builders.ConfigHashAnnotation]
}

// settledMemory samples the manager's heap in use and RSS for 5 s (the heap
// moves with garbage collection) and returns the medians.
func settledMemory(t *testing.T, metricsURL string) (heapInUse, rss float64) {
	t.Helper()
	var heaps, rsses []float64
	for range 20 {
		m := scrape(t, metricsURL)
		heaps, rsses = append(heaps, m["go_memstats_heap_inuse_bytes"]), append(rsses, m["process_resident_memory_bytes"])
		time.Sleep(250 * time.Millisecond) // sampling period of a measurement, not synchronisation
	}
	return median(heaps), median(rsses)
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// scrape reads the unlabelled samples of a Prometheus text exposition.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = f
		}
	}
	if out["go_memstats_heap_inuse_bytes"] == 0 || out["process_resident_memory_bytes"] == 0 {
		t.Fatalf("%s lacks go_memstats_heap_inuse_bytes or process_resident_memory_bytes", url)
	}
	return out
}
