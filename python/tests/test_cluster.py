"""The cluster from Python: Server(cluster_redis=...) through the option
mapping, two servers on one real redis-server (a publish on one reaches a
subscriber on the other; a send to a connection of the other by its id),
and ClusterError when Redis is gone."""

import os
import sys
import time

import pytest

import wsgate
from conftest import connect, recv, run, url_of, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "packaging"))
from redis_server import RedisServer  # noqa: E402


def test_cluster_keywords_map_to_the_options(make_server):
    s = make_server(cluster_redis="127.0.0.1:1", cluster__prefix="py", command_timeout_ms=200)
    assert s.options["cluster.redis"] == "127.0.0.1:1"
    assert s.options["cluster.prefix"] == "py"
    assert s.options["cluster.command_timeout_ms"] == 200
    with pytest.raises(wsgate.InvalidArgumentError, match="not an IP address literal"):
        make_server(cluster_redis="localhost:6379")
    assert issubclass(wsgate.ClusterError, ConnectionError)
    assert wsgate.ClusterError("x").status == wsgate.Status.ECLUSTER


@pytest.fixture
def redis():
    with RedisServer() as r:
        yield r.proc, r.address


def test_two_instances_deliver_to_each_other(make_server, redis):
    proc, address = redis
    servers = [make_server(cluster_redis=address, cluster_require=True, reconnect_max_ms=200)
               for _ in range(2)]
    opened = {0: [], 1: []}
    for i, s in enumerate(servers):
        s.on_open(lambda conn, i=i: (conn.subscribe("news"), opened[i].append(conn.id)))
        s.start()
    wait_until(lambda: all(s.ready for s in servers))

    async def body():
        async with connect(url_of(servers[0])) as a, connect(url_of(servers[1])) as b:
            wait_until(lambda: opened[0] and opened[1])
            time.sleep(0.2)  # the subscriptions reach Redis
            servers[0].publish("news", "hello")
            assert await recv(a) == "hello"
            assert await recv(b) == "hello"
            servers[0].send(opened[1][0], "to b by id")
            assert await recv(b) == "to b by id"
            proc.kill()
            proc.wait(5)
            wait_until(lambda: not servers[0].ready)
            with pytest.raises(wsgate.ClusterError, match="cluster is down"):
                servers[0].send(opened[1][0], "lost")
            servers[0].publish("news", "local only")
            assert await recv(a) == "local only"
    run(body())
