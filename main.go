// Command manager is the xtrace operator: it watches XTrace resources and
// reconciles the xtrace server's Deployment, Service, Secrets and CronJob.
package main

import (
	"flag"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	observabilityv1alpha1 "github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/controllers"
	"github.com/xtrace-dev/xtrace-operator/internal/logging"
)

// version is set at build time (-ldflags "-X main.version=v1.2.3"); it picks the default server image.
var version = "dev"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(observabilityv1alpha1.AddToScheme(scheme))
}

func main() {
	var metricsAddr, probeAddr string
	var leaderElect bool
	var defaultImage, leaderElectionNamespace string
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the operator's own namespace when in a cluster)")
	flag.StringVar(&defaultImage, "default-server-image", "ghcr.io/xtrace-dev/xtrace:"+imageTag(version), "server image used when an XTrace sets no spec.image")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address the metrics endpoint binds to; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the health probes bind to")
	flag.BoolVar(&leaderElect, "leader-elect", false, "enable leader election, so only one manager replica reconciles at a time")
	var logFormat, logLevel string
	flag.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	flag.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flag.Parse()
	ctrl.SetLogger(logr.FromSlogHandler(logging.NewFor(logging.ServiceOperator, os.Stderr, logFormat, logLevel).Handler()))
	log := ctrl.Log.WithName("setup")

	opts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "xtrace-operator.observability.xtrace.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		Cache:                   cache.Options{DefaultNamespaces: watchNamespaces(os.Getenv("WATCH_NAMESPACE"))},
	}
	controllers.NarrowCaching(&opts)
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), opts)
	if err != nil {
		log.Error(err, "unable to create manager")
		os.Exit(1)
	}
	if err := (&controllers.XTraceReconciler{
		Client:       mgr.GetClient(),
		Scheme:       mgr.GetScheme(),
		Recorder:     mgr.GetEventRecorderFor("xtrace-operator"),
		DefaultImage: defaultImage,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "unable to create controller", "controller", "XTrace")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up ready check")
		os.Exit(1)
	}
	log.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager exited")
		os.Exit(1)
	}
}

func imageTag(v string) string {
	if v == "dev" || v == "" {
		return "latest"
	}
	return v
}

// watchNamespaces turns WATCH_NAMESPACE ("", "ns", or "a,b") into cache options; empty means all namespaces.
func watchNamespaces(value string) map[string]cache.Config {
	var out map[string]cache.Config
	for _, ns := range strings.Split(value, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if out == nil {
				out = map[string]cache.Config{}
			}
			out[ns] = cache.Config{}
		}
	}
	return out
}
