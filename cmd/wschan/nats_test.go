package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/natstest"
	"github.com/wschan/wschan/internal/wstest"
)

// TestServeNATSCluster runs three `wschan serve --nats` processes, each on
// a different node of a three-node nats-server cluster, and clients spread
// over them in one room: every client receives every message once, in
// per-sender order.
func TestServeNATSCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs nats-server and wschan processes")
	}
	const instances, clientsPer, perSender = 3, 2, 100
	ctx := wstest.Context(t, 3*time.Minute)
	cluster := natstest.StartCluster(t, 3)
	bin := filepath.Join(t.TempDir(), "wschan")
	if err := wstest.BuildWschan(ctx, bin); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range instances {
		urls = append(urls, startServe(t, ctx, bin, cluster.Nodes[i].URL))
	}
	var chans []*wschan.Channel
	for i := range instances * clientsPer {
		chans = append(chans, wstest.Dial(t, urls[i%instances]+"/ws/room/everyone", nil))
	}
	// Room interest spreads over the cluster asynchronously: warm up until
	// every client has heard from every instance.
	warm := make([][]bool, len(chans))
	for i := range warm {
		warm[i] = make([]bool, instances)
	}
	for done := false; !done; {
		for s := range instances {
			if err := chans[s].SendText(ctx, fmt.Sprintf("warm-up %d", s)); err != nil {
				t.Fatal(err)
			}
		}
		done = true
		for i, ch := range chans {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			for {
				m, err := ch.Read(rctx)
				if err != nil {
					break
				}
				var s int
				if _, err := fmt.Sscanf(string(m.Data), "warm-up %d", &s); err == nil {
					warm[i][s] = true
				}
			}
			cancel()
			for _, ok := range warm[i] {
				done = done && ok
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("room interest never spread: %v", warm)
		}
	}
	// Late warm-ups may still arrive: readers skip them.
	var wg sync.WaitGroup
	senders := chans[:instances] // one on each instance
	for s, ch := range senders {
		wg.Go(func() {
			for k := range perSender {
				if err := ch.SendText(ctx, fmt.Sprintf("%d:%d", s, k)); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
			}
		})
	}
	for r, ch := range chans {
		wg.Go(func() {
			next := make([]int, len(senders))
			for got := 0; got < len(senders)*perSender; {
				m, err := ch.Read(ctx)
				if err != nil {
					t.Errorf("client %d: %v after %v", r, err, next)
					return
				}
				if strings.HasPrefix(string(m.Data), "warm-up") {
					continue
				}
				var s, k int
				if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &s, &k); err != nil || s >= len(senders) {
					t.Errorf("client %d: unexpected %q", r, m.Data)
					return
				}
				if k != next[s] {
					t.Errorf("client %d: from sender %d got %d, want %d (once each, in order)", r, s, k, next[s])
					return
				}
				next[s]++
				got++
			}
		})
	}
	wg.Wait()
	for i, u := range urls {
		resp, err := http.Get(strings.Replace(u, "ws://", "http://", 1) + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("instance %d: /readyz %d", i, resp.StatusCode)
		}
	}
}

// startServe runs `wschan serve --nats natsURL` on a free loopback port
// until the test ends, and returns its ws:// base URL once it is ready.
func startServe(t *testing.T, ctx context.Context, bin, natsURL string) string {
	t.Helper()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--nats", natsURL, "--log-level", "warn")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID: our own child
		<-logged
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("wschan serve on %s:\n%s", addr, logs.String())
		}
	})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "ws://" + addr
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("wschan serve on %s never became ready", addr)
		}
	}
}
