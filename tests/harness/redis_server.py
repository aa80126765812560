"""A real redis-server on a free loopback port for a test: ``loadtest.servers.RedisServer`` (one
copy, shared with the measurement scripts)."""

from loadtest.servers import RedisServer

__all__ = ["RedisServer"]
