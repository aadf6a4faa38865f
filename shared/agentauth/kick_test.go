package agentauth_test

import (
	"context"
	"errors"
	"fmt"
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
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			return fmt.Errorf("no route between the nodes yet: a has %d, b has %d", a.NumRoutes(), b.NumRoutes())
		}
		return nil
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
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		n, err = agentauth.RequestKick(rctx, caller, "k1")
		if errors.Is(err, agentauth.ErrNoKicker) {
			return fmt.Errorf("the kick service is not answering yet: %w", err)
		}
		return nil
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
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if na, nb := conns(a, agentauth.UserName("k1")), conns(b, agentauth.UserName("k1")); na+nb != 0 {
			return fmt.Errorf("k1 still has %d connection(s) on a and %d on b", na, nb)
		}
		return nil
	})
	hermodtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !onA.IsClosed() || !onB.IsClosed() {
			return fmt.Errorf("k1's clients not closed: on a %s, on b %s", onA.Status(), onB.Status())
		}
		return nil
	})
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
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if n, err := agentauth.RequestKick(c, caller, "k1"); !errors.Is(err, agentauth.ErrNoKicker) {
			return fmt.Errorf("a kick request with the kicker stopped answered %d, %v; want %v", n, err, agentauth.ErrNoKicker)
		}
		return nil
	})
}
