"""Fingerprint matching: every location and pattern type, the confirmed logic, the folder
loader, and the Iranian cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from dideban.pipeline.analysis import analyze
from dideban.pipeline.fingerprints import (
    Fingerprint,
    FingerprintDB,
    FingerprintError,
    default_db,
    load_folder,
)
from dideban.pipeline.readers import measurement_of


def fp(
    name: str, location: str, ptype: str, pattern: str, scope: str = "nat", cc: str = ""
) -> Fingerprint:
    return Fingerprint(
        name, scope, location, ptype, pattern, frozenset(c for c in cc.split(",") if c)
    )


DB = FingerprintDB(
    [
        fp("b.full", "body", "full", "BLOCKED"),
        fp("b.prefix", "body", "prefix", "<html>deny"),
        fp("b.contains", "body", "contains", "access denied by policy"),
        fp("b.re", "body", "regexp", r"blocked\s+by\s+[A-Z]{3}"),
        fp("h.full", "header.server", "full", "Censor/1.0"),
        fp("h.prefix", "header.location", "prefix", "http://block.example/"),
        fp("h.contains", "header.x-why", "contains", "filtered"),
        fp("h.re", "header.via", "regexp", r"^proxy-\d+$"),
        fp("d.full", "dns", "full", "10.10.34.35"),
        fp("d.prefix", "dns", "prefix", "10.66."),
    ]
)


def names(found: list[Fingerprint]) -> set[str]:
    return {f.name for f in found}


def test_body_full_matches_whole_body_only() -> None:
    assert names(DB.match_body("BLOCKED")) == {"b.full"}
    assert "b.full" not in names(DB.match_body("BLOCKED!"))
    assert "b.full" not in names(DB.match_body("xBLOCKED"))


def test_body_prefix_is_anchored() -> None:
    assert names(DB.match_body("<html>deny this")) == {"b.prefix"}
    assert names(DB.match_body(" <html>deny this")) == set()


def test_body_contains_and_regexp() -> None:
    body = "<p>access denied by policy</p> blocked  by TCI"
    assert names(DB.match_body(body)) == {"b.contains", "b.re"}
    assert names(DB.match_body("blocked by tci")) == set()  # case-sensitive, as OONI


def test_headers_by_name_case_insensitive_and_each_type() -> None:
    assert names(DB.match_header("Server", "Censor/1.0")) == {"h.full"}
    assert names(DB.match_header("server", "Censor/1.0 extra")) == set()
    assert names(DB.match_header("LOCATION", "http://block.example/?u=x")) == {"h.prefix"}
    assert names(DB.match_header("X-Why", "url filtered here")) == {"h.contains"}
    assert names(DB.match_header("Via", "proxy-12")) == {"h.re"}
    assert names(DB.match_header("Via", "proxy-12a")) == set()
    assert names(DB.match_header("X-Other", "filtered")) == set()


def test_dns_full_and_prefix() -> None:
    assert names(DB.match_dns("10.10.34.35")) == {"d.full"}
    assert names(DB.match_dns("10.10.34.36")) == set()
    assert names(DB.match_dns("10.66.1.2")) == {"d.prefix"}


@pytest.mark.parametrize(
    ("scope", "cc", "probe_cc", "confirmed"),
    [
        ("nat", "IR", "IR", True),
        ("nat", "IR", "DE", False),
        ("isp", "", "DE", True),
        ("prod", "", "US", True),
        ("inst", "RU,IR", "RU", True),
        ("vbw", "", "IR", False),
        ("vbw", "IR", "IR", True),
        ("fp", "", "IR", False),
        ("fp", "IR", "IR", False),
    ],
)
def test_confirmed_logic(scope: str, cc: str, probe_cc: str, confirmed: bool) -> None:
    assert fp("x", "body", "contains", "y", scope, cc).confirms(probe_cc) is confirmed


def test_default_set_loads_both_csvs() -> None:
    db = default_db()
    got = {f.name for f in db.fingerprints}
    assert {"ooni.ir_0", "ooni.ir_3", "ooni.ir_5", "ooni.ae_0"} <= got
    assert len(got) > 1900


IR_BLOCKPAGE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    "<title>M1-6</title></head><body>"
    '<iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" style="width: 100%;'
    ' height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0"'
    ' vspace="0" hspace="0"></iframe></body></html>'
)


def test_iranian_blockpage_ir_0() -> None:
    found = names(default_db().match_body(IR_BLOCKPAGE))
    assert "ooni.ir_0" in found
    assert all(f.confirms("IR") for f in default_db().fingerprints if f.name == "ooni.ir_0")


def test_iranian_peyvandha_ir_3() -> None:
    body = '<html><body><a href="http://peyvandha.ir/1-2.htm">peyvandha</a></body></html>'
    assert "ooni.ir_3" in names(default_db().match_body(body))


def test_iranian_dns_ir_5_and_full_measurement_confirmed() -> None:
    assert names(default_db().match_dns("10.10.34.35")) == {"ooni.ir_5"}
    doc = {
        "test_name": "web_connectivity",
        "probe_cc": "IR",
        "probe_asn": "AS58224",
        "input": "http://www.example.com/",
        "measurement_start_time": "2026-01-01 00:00:00",
        "test_keys": {
            "queries": [
                {"hostname": "www.example.com", "query_type": "A", "failure": None,
                 "answers": [{"answer_type": "A", "ipv4": "10.10.34.35"}]}
            ],
            "tcp_connect": [],
            "requests": [],
            "control": {"dns": {"addrs": ["203.0.113.10"], "failure": None},
                        "http_request": {"status_code": 200, "body_length": 1000, "failure": None}},
        },
    }  # fmt: skip
    raw = measurement_of(doc, "mem", None, None)
    assert not isinstance(raw, str) and hasattr(raw, "doc")
    v = analyze(raw, default_db()).verdict  # type: ignore[arg-type]
    assert v.anomaly and v.confirmed and v.blocking_type == "dns"
    assert v.fingerprints == ["ooni.ir_5"] and v.rules == ["wc.fp.dns"]
    assert v.dns_blocked == 1.0
    # The same answer seen from another country is still matched but not confirmed.
    doc["probe_cc"] = "DE"
    v2 = analyze(measurement_of(doc, "mem", None, None), default_db()).verdict  # type: ignore[arg-type]
    assert v2.fingerprints == ["ooni.ir_5"] and not v2.confirmed


def test_user_folder_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        "lab.block,nat,,body,contains,LAB BLOCK PAGE,5,XX,lab,,\n"
        "ooni.ir_5,fp,,dns,full,10.10.34.35,5,IR,lab,,\n",
        encoding="utf-8",
    )
    db = FingerprintDB.load([tmp_path])
    assert names(db.match_body("a LAB BLOCK PAGE b")) == {"lab.block"}
    (ir5,) = db.match_dns("10.10.34.35")
    assert ir5.scope == "fp" and not ir5.confirms("IR")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x,nat,,body,glob,abc,5,,,,", "unknown pattern_type"),
        ("x,nat,,cookie,full,abc,5,,,,", "unknown location_found"),
        ("x,nat,,body,regexp,(unclosed,5,,,,", "bad regexp"),
        (",nat,,body,full,abc,5,,,,", "empty name"),
        ("x,nat,,body,prefix,,5,,,,", "empty pattern"),
    ],
)
def test_bad_fingerprint_files_are_rejected_with_place(
    tmp_path: Path, row: str, message: str
) -> None:
    (tmp_path / "bad.csv").write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n" + row + "\n",
        encoding="utf-8",
    )
    with pytest.raises(FingerprintError, match=message) as exc:
        load_folder(tmp_path)
    assert "bad.csv:2" in str(exc.value)


def test_json_form_is_loaded_when_no_csv(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(
        '[{"name": "j.1", "scope": "isp", "location_found": "header.server",'
        ' "pattern_type": "full", "pattern": "X", "expected_countries": ["TR"]}]',
        encoding="utf-8",
    )
    (f,) = load_folder(tmp_path)
    assert f.name == "j.1" and f.expected_countries == frozenset({"TR"})


@pytest.mark.parametrize("with_prefix", [False, True])
def test_dns_answers_are_matched_in_extraction_with_any_kind_of_dns_fingerprint(
    with_prefix: bool,
) -> None:
    """With only `full` DNS fingerprints, extraction looks answers up itself (`dns_exact`);
    with others it asks `match_dns`. Both find the same."""
    from dideban.pipeline.observations import extract

    fps = [fp("d.full", "dns", "full", "10.10.34.35", cc="IR")]
    if with_prefix:
        fps.append(fp("d.prefix", "dns", "prefix", "10.66.", cc="IR"))
    db = FingerprintDB(fps)
    assert (db.dns_exact is None) == with_prefix
    answers = ["10.10.34.35", "10.66.1.2", "203.0.113.9"]
    tk = {
        "queries": [
            {"hostname": "x.example", "answers": [{"answer_type": "A", "ipv4": a} for a in answers]}
        ]
    }
    ex = extract(tk, "u", "IR", db)
    got = [o.fingerprints for o in ex.observations]
    assert got == [["d.full"], ["d.prefix"] if with_prefix else [], []]
    assert [m.confirmed for m in ex.matches] == [True] * (1 + with_prefix)


def test_header_names_are_remembered_as_pages_give_them() -> None:
    """The extraction remembers, per header name as written, the fingerprints of its lower
    case (None for a name none looks at): the same matches the first time and every time
    after, and the memo stops growing at 4,096 names."""
    from dideban.pipeline.observations import extract

    db = FingerprintDB([fp("h.full", "header.server", "full", "Censor/1.0")])
    headers = [["SERVER", "Censor/1.0"], ["X-Other", "Censor/1.0"]]
    tk = {"requests": [{"response": {"code": 200, "headers_list": headers}}]}
    for _ in range(2):
        ex = extract(tk, "u", "ZZ", db)
        assert [m.fingerprint.name for m in ex.matches] == ["h.full"]
        assert ex.observations[0].fingerprints == ["h.full"]
    assert db.header_memo == {"SERVER": db.header_index["server"], "X-Other": None}
    many = [[f"X-{i}", "v"] for i in range(5000)] + [["Server", "Censor/1.0"]]
    ex = extract({"requests": [{"response": {"code": 200, "headers_list": many}}]}, "u", "ZZ", db)
    assert [m.fingerprint.name for m in ex.matches] == ["h.full"]  # found past the memo's end
    assert len(db.header_memo) == 4096


def test_each_database_matches_with_its_own_fingerprints_in_turn() -> None:
    """The extraction reads what it uses of a database once per database: databases used in
    turn (the default one, one with a user's fingerprints) each match with their own, from
    one thread or several."""
    from dideban.pipeline.observations import extract

    own = FingerprintDB(
        [
            fp("u.body", "body", "contains", "Our own blockpage"),
            fp("u.dns", "dns", "full", "198.51.100.66"),
            fp("u.header", "header.server", "full", "OwnCensor/2"),
        ]
    )
    tk = {
        "queries": [
            {"hostname": "a.example", "answers": [{"answer_type": "A", "ipv4": "198.51.100.66"}]}
        ],
        "requests": [
            {
                "response": {
                    "code": 200,
                    "body": "<html>Our own blockpage</html>",
                    "headers_list": [["Server", "OwnCensor/2"]],
                }
            }
        ],
    }
    cases = ((own, ["u.body", "u.dns", "u.header"]), (default_db(), []))

    def run(turns: int) -> None:
        for _ in range(turns):
            for db, expected in cases:
                ex = extract(tk, "u", "ZZ", db)
                assert sorted(m.fingerprint.name for m in ex.matches) == expected

    run(2)
    # And from threads at once, each switching databases.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(run, 200) for _ in range(4)]:
            done.result()
