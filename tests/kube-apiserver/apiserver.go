package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// apiserverRun is a running API server: done is closed when it has returned, with err.
type apiserverRun struct {
	done chan struct{}
	err  error
}

// wait waits for the API server to return, at most limit.
func (r *apiserverRun) wait(limit time.Duration) error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(limit):
		return fmt.Errorf("the API server did not stop within %s", limit)
	}
}

// startAPIServer runs kube-apiserver until ctx is cancelled.
func startAPIServer(ctx context.Context, listener net.Listener, etcdURL string, p *pki,
	extraArgs []string) *apiserverRun {
	r := &apiserverRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = runAPIServer(ctx, listener, etcdURL, p, extraArgs)
	}()
	return r
}

// runAPIServer does what the released kube-apiserver command does (app.NewAPIServerCommand), except
// that it serves on a listener that is already open and stops when ctx is cancelled rather than on
// its own signal handler. The configuration is given as the command's flags, so that it reads like a
// kube-apiserver command line; extraArgs come last (a repeated list flag adds to the list).
func runAPIServer(ctx context.Context, listener net.Listener, etcdURL string, p *pki, extraArgs []string) error {
	s := options.NewServerRunOptions()
	flags := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, set := range s.Flags().FlagSets {
		flags.AddFlagSet(set)
	}
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		// Client certificates signed by this CA authenticate; the admin kubeconfig carries one.
		"--client-ca-file=" + p.caFile,
		"--authorization-mode=Node,RBAC",
		// ServiceAccount tokens (TokenRequest, projected tokens) are signed with a key made at start-up,
		// and TokenReview checks them against its public half.
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.saPublicKey,
		"--service-account-signing-key-file=" + p.saSigningKey,
		// Only an address range to allocate Service IPs from: nothing routes to it.
		"--service-cluster-ip-range=10.0.0.0/24",
		// The default reconciler would publish 127.0.0.1 as the endpoint of the kubernetes Service,
		// which endpoint validation refuses (a loopback address); no client here uses that Service.
		"--endpoint-reconciler-type=none",
	}
	if err := flags.Parse(append(args, extraArgs...)); err != nil {
		return err
	}
	// BindPort is ignored when Listener is set, but validated.
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port

	// From here on as NewAPIServerCommand: versions and feature gates, logging, defaults, validation.
	registry := s.GenericServerRunOptions.ComponentGlobalsRegistry
	if err := registry.Set(); err != nil {
		return err
	}
	featureGate := registry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if err := logsapi.ValidateAndApply(s.Logs, featureGate); err != nil {
		return err
	}
	// The server's loopback clients would log the warnings they cause themselves.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return app.Run(ctx, completed)
}
