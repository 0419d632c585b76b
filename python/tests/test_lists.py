"""The binding's lists agree with the C header's, their single source:
WSG_STATUS_MAP (Status and the error classes), WSG_CLOSE_CAUSE_MAP (the
cause names Connection.close_cause reports) and WSG_QUEUE_POLICY_MAP
(wsgate.QUEUE_POLICIES, the names Connection.queue_policy takes), WSG_RECONNECT_MAP
and WSG_CLOSE_CODE_MAP (wsgate.RECONNECT_ADVICE, wsgate.close_code_advice)."""

import os
import re

import wsgate
from wsgate import _core

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "wsgate",
                      "wsgate.h")


def macro_rows(name, pattern):
    text = open(HEADER, encoding="utf-8").read()
    start = text.index(f"#define {name}(XX)")
    block = []
    for line in text[start:].splitlines():
        block.append(line)
        if not line.rstrip().endswith("\\"):
            break
    rows = re.findall(pattern, "\n".join(block))
    assert rows, f"no rows found in {name}"
    return rows


def test_status_enum_matches_the_header():
    rows = [(name, int(value)) for name, value in macro_rows("WSG_STATUS_MAP", r"XX\((\w+), (\d+),")]
    assert [(s.name, s.value) for s in wsgate.Status] == rows
    for name, value in rows:
        assert _core.status_str(value) == f"WSG_{name}"
    # Every failure status has its exception class, named by the status.
    classes = {cls.STATUS: cls for cls in vars(wsgate).values()
               if isinstance(cls, type) and issubclass(cls, wsgate.WsgateError) and cls.STATUS is not None}
    assert set(classes) == {s for s in wsgate.Status if s != wsgate.Status.OK}


def test_close_cause_names_match_the_header():
    rows = macro_rows("WSG_CLOSE_CAUSE_MAP", r'XX\((\w+), (\d+), "(\w+)"')
    assert len(rows) >= 15
    for name, value, text in rows:
        assert _core.close_cause_str(int(value)) == text, name
    assert _core.close_cause_str(0) == "unknown"
    assert _core.close_cause_str(max(int(v) for _, v, _ in rows) + 1) == "unknown"


def test_queue_policy_names_match_the_header():
    rows = macro_rows("WSG_QUEUE_POLICY_MAP", r'XX\((\w+), (\d+), "(\w+)"')
    assert len(rows) >= 4
    assert wsgate.QUEUE_POLICIES == tuple(text for _, _, text in rows)
    assert _core.queue_policies() == [(text, int(value)) for _, value, text in rows]
    for name, value, text in rows:
        assert _core.queue_policy_str(int(value)) == text, name
    assert _core.queue_policy_str(0) == "unknown"
    assert _core.queue_policy_str(max(int(v) for _, v, _ in rows) + 1) == "unknown"
    # The option limits.queue_policy takes the same names.
    option = {o.name: o for o in wsgate.options()}["limits.queue_policy"]
    assert tuple(option.range.split("|")) == wsgate.QUEUE_POLICIES


def test_reconnect_advice_and_close_codes_match_the_header():
    rows = macro_rows("WSG_RECONNECT_MAP", r'XX\((\w+), (\d+), "(\w+)"')
    assert wsgate.RECONNECT_ADVICE == tuple(text for _, _, text in rows) == ("backoff", "no", "app")
    names = {name: text for name, _, text in rows}
    codes = macro_rows("WSG_CLOSE_CODE_MAP", r"XX\((\d+), (\w+), (\w+),")
    assert len(codes) >= 10
    for code, _, advice in codes:
        assert wsgate.close_code_advice(int(code)) == names[advice], code
    assert wsgate.close_code_advice(4321) == "app"
    assert wsgate.close_code_advice(1004) == "no"


def test_a_server_declares_its_own_codes(make_server):
    s = make_server()
    s.set_close_advice(4000, 4099, "no")
    assert s.close_code_advice(4001) == "no"
    assert s.close_code_advice(4100) == "app"
    assert s.close_code_advice(1001) == "backoff"
    assert wsgate.close_code_advice(4001) == "app"  # per server
    for bad in [(1000, 1000, "no"), (4100, 4000, "no"), (4000, 4001, "later")]:
        try:
            s.set_close_advice(*bad)
        except wsgate.InvalidArgumentError:
            continue
        raise AssertionError(f"accepted {bad}")
