// Package redistest runs a real, throwaway redis-server on a free loopback
// port for tests of the heartbeat store, the heartbeat job and the binary:
//
//	srv := redistest.Start(t)
//	store, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
//
// The server keeps nothing on disk and is killed when the test ends. A test
// fails (it does not skip) when redis-server is not installed; `make test`
// installs it.
package redistest
