package eventstore

// LeaderReads returns s's leader read mode whatever the stream's replica
// count, so that tests and benchmarks on a single embedded server exercise
// it (JetStreamStore.Leader returns the store itself on one replica).
func LeaderReads(s *JetStreamStore) Store { return s.leader }
