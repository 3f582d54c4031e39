// Package natstest runs real nats-server processes for tests: a cluster of
// nodes on loopback ports, built from the github.com/nats-io/nats-server/v2
// module pinned in natsserver/go.mod (a module of its own, so nats-server's
// dependencies never raise those of wschan). Only tests import it.
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan/internal/wstest"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds nats-server once per test process (go build's cache makes
// later builds quick) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wschan-natstest-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "nats-server")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, file, _, _ := runtime.Caller(0)
		buildErr = wstest.GoBuild(ctx, filepath.Join(filepath.Dir(file), "natsserver"), buildPath, "github.com/nats-io/nats-server/v2")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Node is one nats-server process.
type Node struct {
	Name    string
	URL     string // nats://127.0.0.1:port for clients
	monitor string // http://127.0.0.1:port
	cmd     *exec.Cmd
	exited  chan struct{}
	mu      sync.Mutex
	killed  bool
}

// Cluster is n nodes routed to each other.
type Cluster struct {
	Nodes []*Node
}

// URLs returns every node's client URL, comma-separated.
func (c *Cluster) URLs() string {
	var us []string
	for _, n := range c.Nodes {
		us = append(us, n.URL)
	}
	return strings.Join(us, ",")
}

// StartCluster starts n nodes on loopback ports, waits until each is routed
// to all the others, and kills them at cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, false)
}

// StartJetStreamCluster is StartCluster with JetStream on every node
// (stores in the test's temporary directory); it also waits until the
// JetStream cluster has elected its leader.
func StartJetStreamCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, true)
}

func startCluster(t testing.TB, n int, js bool) *Cluster {
	t.Helper()
	bin := Binary(t)
	type ports struct{ client, cluster, monitor string }
	ps := make([]ports, n)
	for i := range ps {
		for _, p := range []*string{&ps[i].client, &ps[i].cluster, &ps[i].monitor} {
			addr, err := wstest.FreeLoopbackAddr()
			if err != nil {
				t.Fatal(err)
			}
			_, *p, _ = net.SplitHostPort(addr)
		}
	}
	c := &Cluster{}
	for i, p := range ps {
		var routes []string
		for j, q := range ps {
			if j != i {
				routes = append(routes, "nats://127.0.0.1:"+q.cluster)
			}
		}
		args := []string{"-a", "127.0.0.1", "-p", p.client, "-m", p.monitor, "-n", fmt.Sprintf("node%d", i+1)}
		if js {
			args = append(args, "-js", "--store_dir", t.TempDir())
		}
		if n > 1 {
			args = append(args, "--cluster_name", "wschan-test", "--cluster", "nats://127.0.0.1:"+p.cluster, "--routes", strings.Join(routes, ","))
		}
		node := &Node{Name: fmt.Sprintf("node%d", i+1), URL: "nats://127.0.0.1:" + p.client, monitor: "http://127.0.0.1:" + p.monitor,
			cmd: exec.Command(bin, args...), exited: make(chan struct{})}
		if testing.Verbose() {
			node.cmd.Stderr = os.Stderr
		}
		if err := node.cmd.Start(); err != nil {
			t.Fatalf("start nats-server: %v", err)
		}
		go func() { _ = node.cmd.Wait(); close(node.exited) }()
		t.Cleanup(node.Kill)
		c.Nodes = append(c.Nodes, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, node := range c.Nodes {
		node.waitRoutes(t, ctx, n-1)
	}
	if js {
		for _, node := range c.Nodes {
			node.waitJetStream(t, ctx, n > 1)
		}
	}
	return c
}

// waitJetStream polls the node's /jsz until JetStream is on and, in a
// cluster, has a meta leader.
func (n *Node) waitJetStream(t testing.TB, ctx context.Context, clustered bool) {
	t.Helper()
	n.poll(t, ctx, "/jsz", "JetStream ready", func(body []byte) (bool, string) {
		var jz struct {
			Disabled bool `json:"disabled"`
			Meta     *struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		if err := json.Unmarshal(body, &jz); err != nil {
			return false, err.Error()
		}
		if jz.Disabled {
			return false, "JetStream disabled"
		}
		if clustered && (jz.Meta == nil || jz.Meta.Leader == "") {
			return false, "no meta leader"
		}
		return true, ""
	})
}

// poll GETs path from the node's monitor until ok says so.
func (n *Node) poll(t testing.TB, ctx context.Context, path, want string, ok func([]byte) (bool, string)) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.monitor+path, nil)
		if resp, err := client.Do(req); err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				var done bool
				if done, last = ok(body); done {
					return
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-tick.C:
		case <-n.exited:
			t.Fatalf("nats-server %s exited while starting", n.Name)
		case <-ctx.Done():
			t.Fatalf("nats-server %s: want %s, have %s", n.Name, want, last)
		}
	}
}

// waitRoutes polls the node's /routez until it has want routes.
func (n *Node) waitRoutes(t testing.TB, ctx context.Context, want int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.monitor+"/routez", nil)
		if resp, err := client.Do(req); err == nil {
			var rz struct {
				NumRoutes int `json:"num_routes"`
			}
			err := json.NewDecoder(resp.Body).Decode(&rz)
			resp.Body.Close()
			if err == nil && rz.NumRoutes >= want {
				return
			}
			last = fmt.Sprintf("%d routes", rz.NumRoutes)
		} else {
			last = err.Error()
		}
		select {
		case <-tick.C:
		case <-n.exited:
			t.Fatalf("nats-server %s exited while starting", n.Name)
		case <-ctx.Done():
			t.Fatalf("nats-server %s: want %d routes, have %s", n.Name, want, last)
		}
	}
}

// Kill ends the node's process (SIGKILL, by PID) and waits for it.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.killed {
		return
	}
	n.killed = true
	_ = n.cmd.Process.Kill()
	<-n.exited
}
