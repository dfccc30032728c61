package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs a single-member etcd in this process with its data in dir, and returns it with the
// URL of its client listener.
func startEtcd(ctx context.Context, dir string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	// Port 0 on 127.0.0.1: the kernel picks free ports, so parallel test runs never collide. The
	// advertised URLs are never dialled, since there is one member and the API server is given the
	// real client address below.
	loopback := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{loopback}
	cfg.AdvertiseClientUrls = []url.URL{loopback}
	cfg.ListenPeerUrls = []url.URL{loopback}
	cfg.AdvertisePeerUrls = []url.URL{loopback}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// The data is thrown away when the process stops, so durability is not worth an fsync per write.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case <-time.After(time.Minute):
		etcd.Close()
		return nil, "", errors.New("etcd was not ready within a minute")
	case <-ctx.Done():
		etcd.Close()
		return nil, "", ctx.Err()
	}
	return etcd, "http://" + etcd.Clients[0].Addr().String(), nil
}
