// Command kube-apiserver runs a real Kubernetes control plane for the test suite: an embedded etcd and
// the kube-apiserver of k8s.io/kubernetes, in one process, on 127.0.0.1.
//
// It generates every key it needs, writes an admin kubeconfig to the path given with --kubeconfig,
// prints one JSON line on stdout once /readyz answers ok, and serves until SIGTERM or SIGINT; it then
// shuts the API server and etcd down and removes its temporary directory.
//
//	kube-apiserver --kubeconfig /tmp/admin.kubeconfig [--port 0] [-- extra kube-apiserver flags]
//
// Nothing here serves the Kubernetes API itself: the API server is k8s.io/kubernetes'
// cmd/kube-apiserver/app, configured with its own flags exactly as the released binary would be.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ready is the line printed on stdout when the server answers /readyz; test helpers wait for it.
type ready struct {
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
	PID        int    `json:"pid"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kube-apiserver:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", "", "where to write the admin kubeconfig (required)")
	port := flag.Int("port", 0, "port of the API server on 127.0.0.1 (0: a free port)")
	watchStdin := flag.Bool("exit-on-stdin-eof", false,
		"also stop when standard input reaches end of file (a parent that dies without signalling stops it)")
	timeout := flag.Duration("ready-timeout", 5*time.Minute, "how long to wait for /readyz before giving up")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(),
			"usage: %s --kubeconfig PATH [--port N] [-- kube-apiserver flags...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *kubeconfig == "" {
		flag.Usage()
		return errors.New("--kubeconfig is required")
	}
	kubeconfigPath, err := filepath.Abs(*kubeconfig)
	if err != nil {
		return err
	}

	// The first SIGTERM/SIGINT starts a clean shutdown; stop() below restores the default action, so a
	// second one kills the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *watchStdin {
		ctx = stopOnStdinEOF(ctx)
	}

	dir, err := os.MkdirTemp("", "kube-apiserver-")
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after etcd and the API server have let go of their files.
	defer os.RemoveAll(dir)

	// Listening before the API server is configured reserves the port: no other process can take it
	// between choosing a free port and binding it.
	listener, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w", *port, err)
	}
	server := "https://" + listener.Addr().String()

	pki, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		listener.Close()
		return err
	}
	if err := writeKubeconfig(kubeconfigPath, server, pki); err != nil {
		listener.Close()
		return err
	}

	etcd, etcdURL, err := startEtcd(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		listener.Close()
		return err
	}
	defer etcd.Close()

	apiCtx, cancelAPI := context.WithCancel(ctx)
	defer cancelAPI()
	api := startAPIServer(apiCtx, listener, etcdURL, pki, flag.Args())
	// Every way out stops the API server first and waits for it, so that etcd (closed by the defer
	// above) outlives its last client.
	shutdown := func(cause error) error {
		stop()
		cancelAPI()
		return errors.Join(cause, api.wait(time.Minute))
	}

	if err := waitReady(ctx, kubeconfigPath, *timeout, api); err != nil {
		return shutdown(err)
	}
	line, err := json.Marshal(ready{Kubeconfig: kubeconfigPath, Server: server, PID: os.Getpid()})
	if err != nil {
		return shutdown(err)
	}
	fmt.Println(string(line))

	select {
	case <-api.done:
		// The API server returns on its own only when something failed.
		return shutdown(errors.New("the API server stopped unexpectedly"))
	case err := <-etcd.Err():
		return shutdown(fmt.Errorf("etcd failed: %w", err))
	case <-ctx.Done():
	}
	fmt.Fprintln(os.Stderr, "kube-apiserver: shutting down")
	return shutdown(nil)
}

// stopOnStdinEOF returns a context that is also cancelled once standard input is closed.
func stopOnStdinEOF(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		defer cancel()
		reader := bufio.NewReader(os.Stdin)
		for {
			if _, err := reader.ReadByte(); err != nil {
				return
			}
		}
	}()
	return ctx
}
