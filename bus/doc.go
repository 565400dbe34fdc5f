// Package bus connects Gallerist to NATS JetStream, the log and the bus of
// the event-sourced core (design.md §3, §8).
//
// Two ways in:
//
//   - [StartEmbedded] runs an in-process nats-server with JetStream on a data
//     directory. By default it opens no TCP port at all; clients reach it
//     through [Embedded.Connect], an in-process connection (net.Pipe). This is
//     the single-machine default of `gallerist serve`.
//   - [Connect] dials an external NATS server or cluster (comma-separated
//     URLs) and reconnects forever, logging every state change.
//
// The event store on top of either connection lives in package
// bus/eventstore; the replay guard in package bus/nonce.
package bus
