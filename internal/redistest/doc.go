// Package redistest runs real, throwaway redis-servers on free loopback
// ports for tests of the heartbeat store, the heartbeat job and the binary:
//
//	srv := redistest.Start(t)                  // a standalone server
//	store, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
//	srv.Restart(t)                             // empty again, same port
//
//	tsrv := redistest.StartTLS(t, redistest.TLSOptions{AuthClients: true})
//	// tsrv.URL() is rediss://…; tsrv.CAFile, CertFile, KeyFile are PEM files
//
//	cl := redistest.StartCluster(t, 3)          // a 3-master Redis Cluster
//	// cl.Nodes[0].Addr is one node; cl.Addrs() all of them
//
// The servers keep nothing on disk and are killed when the test ends. A
// test fails (it does not skip) when redis-server or redis-cli is not
// installed; `make test` installs them.
package redistest
