// Package heartbeat carries service liveness signals: the heartbeat message,
// its classification as alive, stale or dead, the stores that keep the latest
// heartbeat of each service, and a Publisher that Go services embed.
//
// A service publishes a small JSON message every interval (60s by default).
// The RedisStore keeps the latest message of each service under a key and
// also PUBLISHes it on a channel, so a dashboard can PSUBSCRIBE to all
// services at once; it works with Redis, Valkey and Dragonfly, standalone or
// clustered. The LocalStore keeps one file per service in a directory for a
// single machine with no server. PushHandler lets hosts without either report
// over HTTP.
//
// The package reads no configuration and keeps no package state: callers pass
// in the store address, the clock and the error log.
package heartbeat
