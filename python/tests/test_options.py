"""Options by dotted name, validated by the core; the error hierarchy."""

import pickle

import pytest

import wsgate
from wsgate import Status


def test_option_table_comes_from_the_core():
    table = wsgate.options()
    names = [o.name for o in table]
    assert "listen.port" in names and "log.level" in names
    assert len(names) == len(set(names)) == len(wsgate.Config())
    port = next(o for o in table if o.name == "listen.port")
    assert port.type == "int" and port.default == "8080" and port.range == "0..65535"
    assert port.doc
    level = next(o for o in table if o.name == "log.level")
    assert level.type == "enum" and "debug" in level.range.split("|")


def test_config_defaults_and_types():
    cfg = wsgate.Config()
    for o in wsgate.options():
        v = cfg[o.name]
        if o.type == "int":
            assert type(v) is int and str(v) == o.default
        elif o.type == "bool":
            assert type(v) is bool
        else:
            assert type(v) is str and v == o.default


def test_config_set_get_roundtrip():
    cfg = wsgate.Config({"listen.port": 0, "log.level": "warn"})
    assert cfg["listen.port"] == 0 and cfg["log.level"] == "warn"
    cfg["listen.port"] = "9000"  # text is parsed as the option's type, as --set does
    assert cfg["listen.port"] == 9000
    cfg.set_from_string("server.path=/ws")
    assert cfg["server.path"] == "/ws"
    copy = cfg.copy()
    copy["listen.port"] = 1
    assert cfg["listen.port"] == 9000
    del cfg["listen.port"]
    assert cfg["listen.port"] == 8080
    assert "listen.port" in cfg and "no.such" not in cfg
    assert cfg.get("no.such") is None
    assert "server.path" in repr(cfg)


@pytest.mark.parametrize("key,value,words", [
    ("no.such.option", 1, ["unknown option", "no.such.option"]),
    ("no.such.option", "x", ["unknown option", "no.such.option"]),
    ("listen.port", 70000, ["listen.port", "0..65535"]),
    ("listen.port", -1, ["listen.port", "0..65535"]),
    ("listen.port", "eighty", ["listen.port", "decimal"]),
    ("listen.port", 10 ** 30, ["listen.port"]),
    ("listen.port", True, ["listen.port", "int"]),
    ("log.level", "loud", ["log.level", "debug|info|warn|error|off"]),
    ("listen.host", "not an address", ["listen.host"]),
    ("server.path", "no-slash", ["server.path", "/"]),
    ("listen.host", 5, ["listen.host", "string"]),
])
def test_bad_option_raises_core_message(key, value, words):
    cfg = wsgate.Config()
    before = cfg.to_dict()
    with pytest.raises(wsgate.InvalidArgumentError) as info:
        cfg[key] = value
    err = info.value
    assert isinstance(err, wsgate.WsgateError) and isinstance(err, ValueError)
    assert err.status == Status.EINVAL and err.status_name == "WSG_EINVAL"
    for w in words:
        assert w in err.message, err.message
    assert str(err) == err.message
    assert cfg.to_dict() == before  # a failed set changed nothing


def test_bad_value_type_is_a_type_error():
    with pytest.raises(TypeError):
        wsgate.Config()["listen.port"] = 1.5
    with pytest.raises(TypeError):
        wsgate.Config()["listen.port"] = None


def test_server_options_errors_and_kwargs():
    with pytest.raises(wsgate.InvalidArgumentError, match="unknown option 'heartbeat.nonsense'"):
        wsgate.Server(options={"heartbeat.nonsense": "chat"})
    with pytest.raises(wsgate.InvalidArgumentError, match="listen.port"):
        wsgate.Server(port=123456)
    with pytest.raises(wsgate.InvalidArgumentError, match="unknown option 'bogus'"):
        wsgate.Server(bogus=1)
    s = wsgate.Server(host="127.0.0.1", port=0, max_connections=7,
                      limits__max_message_bytes=1000, options={"log.level": "warn"})
    assert s.options["listen.host"] == "127.0.0.1"
    assert s.options["limits.max_connections"] == 7
    assert s.options["limits.max_message_bytes"] == 1000
    assert s.options["log.level"] == "warn"
    with pytest.raises(TypeError):
        s.options["listen.port"] = 1  # read-only
    cfg = s.config
    assert isinstance(cfg, wsgate.Config) and cfg["limits.max_connections"] == 7
    s2 = wsgate.Server(config=cfg, port=0)
    assert s2.options["limits.max_connections"] == 7


def test_unknown_names_suggest_the_closest():
    with pytest.raises(wsgate.InvalidArgumentError) as info:
        wsgate.Config()["log.levl"] = "debug"
    assert info.value.message == "unknown option 'log.levl' (did you mean log.level?)"
    with pytest.raises(wsgate.InvalidArgumentError) as info:
        wsgate.Server(ping_interval=1000)
    assert "did you mean heartbeat.ping_interval_ms?" in info.value.message
    with pytest.raises(wsgate.InvalidArgumentError) as info:
        wsgate.Server(options={"heartbeat.nonsense": 1})
    assert "did you mean" not in info.value.message


@pytest.mark.parametrize("keyword,names", [
    ("level", ["compression.level", "log.level"]),
    ("key_file", ["tls.key_file", "auth.jwt.key_file"]),
])
def test_ambiguous_short_keyword_names_the_full_names(keyword, names):
    for make in (lambda **kw: wsgate.Server(port=0, **kw), wsgate.Config):
        with pytest.raises(wsgate.InvalidArgumentError) as info:
            make(**{keyword: "debug"})
        err = info.value
        assert err.status == Status.EINVAL
        assert f"keyword '{keyword}' is ambiguous" in err.message, err.message
        for name in names:
            assert name in err.message and name.replace(".", "__") + "=" in err.message, err.message
    # The spelled-out forms work.
    s = wsgate.Server(port=0, log__level="debug", compression__level=9)
    assert s.options["log.level"] == "debug" and s.options["compression.level"] == 9


def test_every_ambiguous_last_part_is_refused():
    from collections import Counter
    counts = Counter(o.name.rsplit(".", 1)[-1] for o in wsgate.options())
    for last, n in counts.items():
        if n > 1:
            with pytest.raises(wsgate.InvalidArgumentError, match="ambiguous"):
                wsgate.Config(**{last: 1})
        else:
            name = wsgate._config.option_name(last)
            assert name.endswith("." + last) or name == last


def test_error_hierarchy():
    expected = {
        wsgate.InvalidArgumentError: (Status.EINVAL, ValueError),
        wsgate.NotFoundError: (Status.ENOTFOUND, LookupError),
        wsgate.ClosedError: (Status.ECLOSED, wsgate.WsgateError),
        wsgate.NoMemoryError: (Status.ENOMEM, MemoryError),
        wsgate.StateError: (Status.ESTATE, RuntimeError),
        wsgate.NetworkError: (Status.EIO, OSError),
        wsgate.TLSError: (Status.ETLS, wsgate.WsgateError),
        wsgate.BusyError: (Status.EBUSY, RuntimeError),
        wsgate.LimitError: (Status.ELIMIT, wsgate.WsgateError),
        wsgate.InternalError: (Status.EINTERNAL, wsgate.WsgateError),
        wsgate.ClusterError: (Status.ECLUSTER, ConnectionError),
        wsgate.TimedOutError: (Status.ETIMEOUT, TimeoutError),
    }
    for cls, (status, base) in expected.items():
        assert issubclass(cls, wsgate.WsgateError) and issubclass(cls, base)
        e = cls("detail")
        assert e.status == status and e.message == "detail"
        assert e.status_name == f"WSG_{status.name}"
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is cls and again.status == status and again.message == "detail"
    assert len({c.STATUS for c in expected}) == len(expected)
    # A status this version does not know keeps its number.
    assert wsgate.WsgateError("x", 99).status == 99


def test_version():
    assert wsgate.library_version() == wsgate.__version__
    assert wsgate.__version__.count(".") == 2
