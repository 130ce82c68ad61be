// Package replicatest holds the tests that run the xtrace server on real
// PostgreSQL streaming replicas (pgtest.NewReplicated) and as several
// processes on one database: read routing, the lag guard, replica and
// primary failures, and the correctness of many replicas of the server.
package replicatest
