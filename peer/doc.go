// Package peer is how two checkers watch each other.
//
// The server half (NewHandler) answers "are you alive, can you send
// mail?" from a Health the caller keeps up to date (package server mounts it
// on checker serve's listener); the client half (Client)
// asks a peer that question and turns the answer into a Result whose Subject
// is the notification to mail to that peer's admin.
//
// The wire format — the three plain-text verdicts inherited from the earlier
// Python tool and the JSON status document — is defined once, in wire.go, and
// both halves use it, so they cannot drift apart.
package peer
