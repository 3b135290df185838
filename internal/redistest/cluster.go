package redistest

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters without replicas on loopback
// ports, owned by one test.
type Cluster struct {
	// Nodes are the masters, in the order their ports were chosen.
	Nodes []*Server
}

// StartCluster runs masters redis-servers (at least 3, as redis-cli
// requires) with cluster mode on, joins them with `redis-cli --cluster
// create` so that the 16384 slots are spread over them, and waits until
// every node reports cluster_state:ok. The servers are killed when the test
// ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("StartCluster(%d): a Redis Cluster needs at least 3 masters", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli is not on PATH; run `make test`, which installs it")
	}
	c := &Cluster{}
	var addrs []string
	for range masters {
		port := FreePort(t)
		dir := t.TempDir()
		srv := start(t, port, []string{
			"--port", strconv.Itoa(port), "--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--cluster-config-file", dir + "/nodes.conf",
			"--cluster-node-timeout", "5000",
		}, Ping)
		c.Nodes = append(c.Nodes, srv)
		addrs = append(addrs, srv.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startGuard)
	for _, n := range c.Nodes {
		for {
			info, err := Do(n.Addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ready within %s: %v\n%s", n.Addr, startGuard, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the host:port of every node.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	return addrs
}

// NodeFor returns the node that holds key's slot, as CLUSTER KEYSLOT and
// CLUSTER NODES tell.
func (c *Cluster) NodeFor(t testing.TB, key string) *Server {
	t.Helper()
	slotText, err := Do(c.Nodes[0].Addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	slot, _ := strconv.Atoi(slotText)
	nodes, err := Do(c.Nodes[0].Addr, "CLUSTER", "NODES")
	if err != nil {
		t.Fatalf("CLUSTER NODES: %v", err)
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@") // ip:port@busport
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && slot >= l && slot <= h {
				for _, n := range c.Nodes {
					if n.Addr == addr || sameHostPort(n.Addr, addr) {
						return n
					}
				}
			}
		}
	}
	t.Fatalf("no node holds slot %d of %s:\n%s", slot, key, nodes)
	return nil
}

func sameHostPort(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	return err1 == nil && err2 == nil && pa == pb && net.ParseIP(ha).Equal(net.ParseIP(hb))
}
