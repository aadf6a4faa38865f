package agentauth_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// clusterNode starts one node of a loopback cluster with a system account
// (user sys) and, in the global account, users named as agents' connections
// are (agentauth.UserName), so kicks can be shown without a callout.
func clusterNode(t *testing.T, name string, routes []string) *server.Server {
	t.Helper()
	sys := server.NewAccount("SYS")
	opts := &server.Options{ServerName: name, Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Accounts: []*server.Account{sys}, SystemAccount: "SYS",
		Users: []*server.User{{Username: "sys", Password: "sys-pw", Account: sys},
			{Username: agentauth.UserName("k1"), Password: "k1-pw"}, {Username: agentauth.UserName("k2"), Password: "k2-pw"}},
		Cluster: server.ClusterOpts{Name: "kick", Host: "127.0.0.1", Port: -1}}
	for _, r := range routes {
		opts.Routes = append(opts.Routes, server.RoutesFromStr(r)...)
	}
	return hermodtest.Server(t, opts)
}

func userURL(ns *server.Server, user, pw string) string {
	return "nats://" + strings.ReplaceAll(user, ":", "%3A") + ":" + pw + "@" + ns.Addr().String()
}

// In a cluster, the system kicker finds an agent's connections on every
// node and closes each on its own node, and only that agent's; kick
// requests are served on the services' connection.
func TestSystemKickerAcrossACluster(t *testing.T) {
	a := clusterNode(t, "a", nil)
	b := clusterNode(t, "b", []string{"nats://" + a.ClusterAddr().String()})
	hermodtest.Eventually(t, 10*time.Second, "the route between the nodes", func() bool {
		return a.NumRoutes() > 0 && b.NumRoutes() > 0
	})
	connect := func(ns *server.Server, user, pw string) *nats.Conn {
		nc, err := nats.Connect(userURL(ns, user, pw), nats.NoReconnect())
		if err != nil {
			t.Fatalf("connect %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	onA, onB := connect(a, agentauth.UserName("k1"), "k1-pw"), connect(b, agentauth.UserName("k1"), "k1-pw")
	other := connect(b, agentauth.UserName("k2"), "k2-pw")
	sys := connect(a, "sys", "sys-pw")
	if acc, err := agentauth.AccountOf(context.Background(), sys); err != nil || acc != "SYS" {
		t.Fatalf("system user in %q (%v)", acc, err)
	}
	if acc, err := agentauth.AccountOf(context.Background(), other); err != nil || acc != "$G" {
		t.Fatalf("agent user in %q (%v)", acc, err)
	}

	// Requests on a services' connection (here the global account's k2),
	// served with the system connection.
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	svc := connect(b, agentauth.UserName("k2"), "k2-pw")
	k := agentauth.NewSystemKicker(sys)
	go func() { served <- agentauth.ServeKicks(ctx, svc, k.Kick, zerolog.Nop()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("ServeKicks: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	caller := connect(a, agentauth.UserName("k2"), "k2-pw")
	var n int
	var err error
	hermodtest.Eventually(t, 5*time.Second, "the kick service answering", func() bool {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		n, err = agentauth.RequestKick(rctx, caller, "k1")
		return err != agentauth.ErrNoKicker
	})
	if err != nil || n != 2 {
		t.Fatalf("kicked %d (%v), want the 2 connections of k1", n, err)
	}
	conns := func(ns *server.Server, user string) int {
		cz, err := ns.Connz(&server.ConnzOptions{Username: true, User: user})
		if err != nil {
			t.Fatal(err)
		}
		return len(cz.Conns)
	}
	hermodtest.Eventually(t, 5*time.Second, "both of k1's connections closed", func() bool {
		return conns(a, agentauth.UserName("k1")) == 0 && conns(b, agentauth.UserName("k1")) == 0
	})
	hermodtest.Eventually(t, 5*time.Second, "k1's clients closed", func() bool { return onA.IsClosed() && onB.IsClosed() })
	if !other.IsConnected() || !svc.IsConnected() || !caller.IsConnected() {
		t.Errorf("another user's connection was closed")
	}
	// Nothing left to kick: zero, no error.
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if n, err := agentauth.RequestKick(rctx, caller, "k1"); err != nil || n != 0 {
		t.Errorf("second kick: %d, %v", n, err)
	}
	// Without a kicker, RequestKick says so.
	stop()
	hermodtest.Eventually(t, 10*time.Second, "no kicker", func() bool {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := agentauth.RequestKick(c, caller, "k1")
		return err == agentauth.ErrNoKicker
	})
}
