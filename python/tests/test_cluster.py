"""The cluster from Python: Server(cluster_redis=...) through the option
mapping, two servers on one real redis-server (a publish on one reaches a
subscriber on the other; a send to a connection of the other by its id;
presence on both; session data written on one, read on the other, also
awaited through wsgate.aio), ClusterError when Redis is gone and
TimedOutError when it hangs past a wait's timeout."""

import asyncio
import os
import signal
import sys
import time

import pytest

import wsgate
from wsgate.aio import AsyncServer
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


def named_cluster_server(make_server, address, opened):
    """An instance whose users are named by the x-name header; every
    connection joins 'room'."""
    s = make_server(cluster_redis=address, cluster_require=True, reconnect_max_ms=200,
                    command_timeout_ms=1000, auth__mode="callback")
    s.on_auth(lambda request: request.header("x-name"))
    s.on_open(lambda conn: (conn.subscribe("room"), opened.append(conn)))
    return s


def test_presence_and_session_data_across_instances(make_server, redis):
    proc, address = redis
    opened = ([], [])
    servers = [named_cluster_server(make_server, address, opened[i]) for i in range(2)]
    for s in servers:
        s.start()
    wait_until(lambda: all(s.ready for s in servers))

    def as_(name, i):
        return connect(url_of(servers[i]), extra_headers={"x-name": name})

    async def body():
        async with as_("alice", 0), as_("alice", 1), as_("bob", 1):
            wait_until(lambda: len(opened[0]) == 1 and len(opened[1]) == 2)
            every = sorted(c.id for c in opened[0] + opened[1])
            for s in servers:  # presence reaches Redis a moment after the subscription
                wait_until(lambda s=s: sorted(e.conn for e in s.topic_presence("room", timeout=5)) == every)
            entries = servers[0].topic_presence("room")
            assert {e.node for e in entries} == {opened[0][0].id >> 48, opened[1][0].id >> 48}
            assert len({e.node for e in entries}) == 2 and all(e.node for e in entries)
            assert {e.user_id for e in entries} == {"alice", "bob"}
            alice = servers[1].user_presence("alice")
            assert sorted(e.conn for e in alice) == sorted(
                c.id for c in opened[0] + opened[1] if c.user_id == "alice")
            assert servers[0].user_presence("carol") == []

            servers[0].session_set("sess:alice", b"cart=3", ttl=60)
            assert servers[1].session_get("sess:alice") == b"cart=3"
            servers[1].session_delete("sess:alice")
            assert servers[0].session_get("sess:alice") is None

            # Redis hangs: a short wait gives up, a longer one gets the
            # command timeout as ClusterError, with this instance's entries.
            proc.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(wsgate.TimedOutError, match="no answer within 100 ms"):
                    servers[0].session_get("sess:alice", timeout=0.1)
                with pytest.raises(wsgate.ClusterError) as info:
                    servers[0].topic_presence("room", timeout=10)
                assert [e.conn for e in info.value.presence] == [opened[0][0].id]
            finally:
                proc.send_signal(signal.SIGCONT)
    run(body())


def test_awaitables_across_instances(make_server, redis):
    proc, address = redis
    opened = []
    a = named_cluster_server(make_server, address, opened)
    a.start()
    b = AsyncServer(host="127.0.0.1", port=0, cluster_redis=address, cluster_require=True,
                    options={"server.shutdown_timeout_ms": 1000})

    async def body():
        async with b:
            wait_until(lambda: a.ready and b.ready)
            async with connect(url_of(a), extra_headers={"x-name": "dana"}):
                while not opened:
                    await asyncio.sleep(0.01)
                for _ in range(500):
                    entries = await b.topic_presence("room", timeout=5)
                    if entries:
                        break
                    await asyncio.sleep(0.01)
                assert [(e.conn, e.user_id) for e in entries] == [(opened[0].id, "dana")]
                assert [e.conn for e in await b.user_presence("dana")] == [opened[0].id]
                a.session_set("shared", "from a")
                assert await b.session_get("shared", timeout=5) == b"from a"
                await b.session_set("shared", b"from b", ttl=30)
                assert a.session_get("shared") == b"from b"
                await b.session_delete("shared")
                assert await b.session_get("shared") is None
                proc.send_signal(signal.SIGSTOP)  # Redis hangs: the loop does not
                try:
                    with pytest.raises(wsgate.TimedOutError, match="no answer within 100 ms"):
                        await b.session_get("shared", timeout=0.1)
                    with pytest.raises(wsgate.ClusterError):
                        await b.user_presence("dana", timeout=10)
                finally:
                    proc.send_signal(signal.SIGCONT)
    run(body())
