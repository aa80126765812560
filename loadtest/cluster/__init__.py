"""The local multi-replica stack (replicas + Redis + HAProxy + Prometheus) that
``make cluster-test`` runs its fault and monitoring tests on (tests/cluster)."""
