// Package heartbeat carries service liveness signals: the heartbeat message,
// its classification as alive, stale or dead, the stores that keep the latest
// heartbeat of each service, and a Publisher that Go services embed.
//
// A service publishes a small JSON message every interval (60s by default).
// The RedisStore keeps the latest message of each service under a key and
// also PUBLISHes it on a channel, so a dashboard can PSUBSCRIBE to all
// services at once; it works with Redis, Valkey and Dragonfly, standalone or
// clustered (a single node address that turns out to be a cluster node is
// used as the cluster), over TLS with a private CA and client certificates
// (LoadTLSConfig), or through a go-redis client the service already has
// (NewRedisStore). GetMany reads named services without listing the
// store (no SCAN on Redis, for ACL users allowed only GET). RedisStore.Mirror makes services that only PUBLISH
// visible to Get and List. The LocalStore keeps one file per service in a
// directory for a single machine with no server. PushHandler lets hosts
// without either report over HTTP. Stores can cap the number of services
// they keep and let heartbeats expire (WithMaxServices, WithKeyTTL).
//
// ParseRedisSpec checks a store address without connecting, and no error
// of this package contains a Redis password. Heartbeat text comes from
// other processes: Escape (and FormatBeat, ShortInstanceID) make it safe
// to print on a terminal.
//
// A Redis user for publishing needs SET and PUBLISH: the key is set first,
// so without PUBLISH every beat fails while checks, which read the key,
// still see the service alive, and only watchers miss it.
//
// The package reads no configuration: callers pass in the store address,
// the clock and the logs. Its one piece of process state is forced on it:
// go-redis has a single, process-wide logger, which the first RedisStore
// opened replaces (redis.SetLogger) so that go-redis's lines reach the
// store's and publishers' logs instead of stderr; WithKeepRedisLogger
// leaves it alone.
package heartbeat
