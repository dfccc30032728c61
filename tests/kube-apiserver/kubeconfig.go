package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const contextName = "twilio-video-operator-test"

// writeKubeconfig writes a kubeconfig for the admin, with the certificates inline so that it stays
// usable on its own (the temporary directory of the PKI is private to this process).
func writeKubeconfig(path, server string, p *pki) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	config := clientcmdapi.NewConfig()
	config.Clusters[contextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	config.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{
		ClientCertificateData: p.adminCertPEM,
		ClientKeyData:         p.adminKeyPEM,
	}
	config.Contexts[contextName] = &clientcmdapi.Context{
		Cluster: contextName, AuthInfo: adminUser, Namespace: "default",
	}
	config.CurrentContext = contextName
	return clientcmd.WriteToFile(*config, path)
}

// waitReady polls /readyz through the kubeconfig just written (which so gets tested too) until it
// answers ok and the default namespace exists, which is when clients can start creating objects.
func waitReady(ctx context.Context, kubeconfig string, timeout time.Duration, api *apiserverRun) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restConfig.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	deadline := time.After(timeout)
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return errors.New("stopped before the API server was ready")
		case <-api.done:
			return fmt.Errorf("the API server stopped before it was ready: %w", api.err)
		case <-deadline:
			return fmt.Errorf("the API server was not ready within %s: %w", timeout, last)
		case <-ticker.C:
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Errorf("/readyz: %w: %s", err, body)
			continue
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			last = err
			continue
		}
		return nil
	}
}
