"""A small store of synthetic measurements with known counts, for tests, demos and benches.

The rows go through the store's own writer (`dideban.store`), so the tables are exactly what
ingest produces. The raw measurements are plausible web_connectivity documents written to a
JSONL file, so the measurement page can show every step next to the control.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from dideban.model.stored import StoredMeasurement
from dideban.model.verdict import Observation, Verdict
from dideban.store import Batch, Store


def write_store(
    db_path: Path,
    verdicts: list[Verdict],
    observations: list[Observation],
    raws: dict[str, dict[str, Any]],
    raw_file: Path,
) -> None:
    """Write these rows through the store's writer (one batch); the raw measurements go to
    `raw_file` (JSONL) and the store records where each one lives."""
    raw_file.parent.mkdir(parents=True, exist_ok=True)
    line_of: dict[str, int] = {}
    with raw_file.open("w", encoding="utf-8") as fh:
        for i, (uid, raw) in enumerate(raws.items(), start=1):
            fh.write(json.dumps(raw, sort_keys=True) + "\n")
            line_of[uid] = i
    stored = []
    rows = []
    for v in verdicts:
        line = line_of.get(v.measurement_uid)
        if line is not None:
            v = dataclasses.replace(v, raw_path=str(raw_file), raw_line=line)
            stored.append(StoredMeasurement.of_verdict(v, str(raw_file), line))
        rows.append(v)
    with Store.open(db_path) as store:
        store.write_batch(Batch(measurements=stored, observations=observations, verdicts=rows))


COUNTRIES = {
    "IR": ["AS197207", "AS44244", "AS58224"],
    "CN": ["AS4134", "AS4837"],
    "RU": ["AS12389"],
    "DE": ["AS3320"],
}
DOMAINS = {
    "www.bbc.com": "NEWS",
    "twitter.com": "GRP",
    "www.youtube.com": "MMED",
    "www.wikipedia.org": "CULTR",
    "www.torproject.org": "ANON",
    "signal.org": "COMT",
    "example.org": None,
}
BLOCKPAGE_FINGERPRINT = "ir_http_blockpage_10.10.34.34"
BLOCKPAGE_IP = "10.10.34.34"  # a value in synthetic DNS answers; nothing dials it
START = dt.datetime(2026, 10, 1)


def synthetic_corpus(
    n: int = 400, seed: int = 5
) -> tuple[list[Verdict], list[Observation], dict[str, dict[str, Any]]]:
    """`n` verdicts with observations and raw measurements; deterministic for a seed.

    IR and CN block most of the listed domains with varied techniques; RU blocks a few by
    DNS; DE blocks nothing. Some measurements fail. Every IR http-diff verdict matches an
    Iranian blockpage fingerprint and is confirmed.
    """
    rnd = random.Random(seed)
    verdicts: list[Verdict] = []
    observations: list[Observation] = []
    raws: dict[str, dict[str, Any]] = {}
    ccs = list(COUNTRIES)
    domains = list(DOMAINS)
    for i in range(n):
        cc = ccs[i % len(ccs)]
        asn = rnd.choice(COUNTRIES[cc])
        domain = domains[rnd.randrange(len(domains))]
        when = START + dt.timedelta(minutes=rnd.randrange(60 * 24 * 45))
        test_name = "web_connectivity" if rnd.random() < 0.9 else "whatsapp"
        uid = f"20261001{i:06d}_{cc}_{test_name}_{rnd.getrandbits(48):012x}"
        url = f"https://{domain}/"
        blocked = domain != "example.org" and (
            (cc == "IR" and rnd.random() < 0.8)
            or (cc == "CN" and rnd.random() < 0.7)
            or (
                cc == "RU"
                and domain in ("twitter.com", "www.torproject.org")
                and rnd.random() < 0.9
            )
        )
        failed = not blocked and rnd.random() < 0.05
        btype: str | None = None
        if blocked:
            btype = {
                "IR": rnd.choice(["http-diff", "dns", "tls"]),
                "CN": rnd.choice(["dns", "tcp_ip", "tls"]),
            }.get(cc, "dns")
        confirmed = blocked and cc == "IR" and btype == "http-diff"
        fps = [BLOCKPAGE_FINGERPRINT] if confirmed else []
        rules = ["wc.control_ok"]
        if failed:
            rules = ["wc.probe_failed"]
        elif blocked:
            rules.append(
                {
                    "dns": "wc.dns_inconsistent",
                    "tcp_ip": "wc.tcp_blocked",
                    "tls": "wc.tls_reset",
                    "http-diff": "wc.http_blockpage",
                }[str(btype)]
            )
        else:
            rules.append("wc.all_ok")
        v = Verdict(
            measurement_uid=uid,
            report_id=f"{when:%Y%m%dT%H%M%SZ}_{test_name}_{cc}_{asn[2:]}_n1_{i:08d}",
            input=url if test_name == "web_connectivity" else None,
            domain=domain if test_name == "web_connectivity" else None,
            probe_cc=cc,
            probe_asn=asn,
            test_name=test_name,
            measurement_start_time=when,
            category_code=DOMAINS[domain] if test_name == "web_connectivity" else None,
            anomaly=blocked,
            confirmed=confirmed,
            failure=failed,
            blocking_type=btype,
            dns_blocked=1.0 if btype == "dns" else 0.0,
            dns_ok=0.0 if btype == "dns" else 1.0,
            tcp_blocked=1.0 if btype == "tcp_ip" else 0.0,
            tcp_ok=0.0 if btype in ("dns", "tcp_ip") else 1.0,
            tls_blocked=1.0 if btype == "tls" else 0.0,
            tls_ok=1.0 if btype is None else 0.0,
            http_blocked=1.0 if btype == "http-diff" else 0.0,
            http_ok=1.0 if btype is None and not failed else 0.0,
            fingerprints=fps,
            rules=rules,
            rules_version="synthetic-1",
        )
        verdicts.append(v)
        if test_name == "web_connectivity":
            obs, raw = _web_measurement(uid, v, url, domain, btype, failed, when, rnd)
            observations.extend(obs)
            raws[uid] = raw
    return verdicts, observations, raws


def _web_measurement(
    uid: str,
    v: Verdict,
    url: str,
    domain: str,
    btype: str | None,
    failed: bool,
    when: dt.datetime,
    rnd: random.Random,
) -> tuple[list[Observation], dict[str, Any]]:
    real_ip = f"198.51.100.{rnd.randrange(1, 250)}"
    probe_ip = BLOCKPAGE_IP if btype in ("dns", "http-diff") and v.probe_cc == "IR" else real_ip
    if btype == "dns" and v.probe_cc != "IR":
        probe_ip = f"203.0.113.{rnd.randrange(1, 250)}"
    obs: list[Observation] = [
        Observation(
            uid,
            0,
            "dns",
            1,
            hostname=domain,
            dns_engine="system",
            dns_answer=probe_ip,
            t0=0.001,
            t=0.02,
        )
    ]
    tcp_fail = "generic_timeout_error" if btype == "tcp_ip" else None
    tls_fail = "connection_reset" if btype == "tls" else None
    http_fail = "generic_timeout_error" if failed else None
    obs.append(
        Observation(uid, 1, "tcp", 2, ip=probe_ip, port=443, failure=tcp_fail, t0=0.02, t=0.05)
    )
    if tcp_fail is None:
        obs.append(
            Observation(
                uid,
                2,
                "tls",
                2,
                ip=probe_ip,
                port=443,
                tls_server_name=domain,
                failure=tls_fail,
                t0=0.05,
                t=0.09,
            )
        )
    blockpage = btype == "http-diff"
    if tcp_fail is None and tls_fail is None:
        obs.append(
            Observation(
                uid,
                3,
                "http",
                3,
                http_request_url=url,
                http_status_code=None if failed else (403 if blockpage else 200),
                http_body_length=None if failed else (612 if blockpage else 48213),
                http_title=None if failed else ("Blocked" if blockpage else domain),
                failure=http_fail,
                t0=0.09,
                t=0.3,
                fingerprints=[BLOCKPAGE_FINGERPRINT] if v.confirmed else [],
            )
        )
    raw = {
        "measurement_uid": uid,
        "report_id": v.report_id,
        "input": url,
        "probe_cc": v.probe_cc,
        "probe_asn": v.probe_asn,
        "probe_ip": "127.0.0.1",
        "test_name": "web_connectivity",
        "test_version": "0.4.3",
        "data_format_version": "0.2.0",
        "measurement_start_time": when.strftime("%Y-%m-%d %H:%M:%S"),
        "software_name": "dideban",
        "test_keys": {
            "queries": [
                {
                    "hostname": domain,
                    "engine": "system",
                    "failure": None,
                    "query_type": "A",
                    "answers": [{"answer_type": "A", "ipv4": probe_ip}],
                    "t0": 0.001,
                    "t": 0.02,
                }
            ],
            "tcp_connect": [
                {
                    "ip": probe_ip,
                    "port": 443,
                    "status": {"success": tcp_fail is None, "failure": tcp_fail},
                    "t0": 0.02,
                    "t": 0.05,
                }
            ],
            "control": {
                "dns": {"failure": None, "addrs": [real_ip]},
                "tcp_connect": {f"{real_ip}:443": {"status": True, "failure": None}},
                "tls_handshake": {
                    f"{real_ip}:443": {"server_name": domain, "status": True, "failure": None}
                },
                "http_request": {
                    "status_code": 200,
                    "body_length": 48213,
                    "title": domain,
                    "failure": None,
                    "headers": {},
                },
            },
            "blocking": btype if btype else (None if failed else False),
            "accessible": None if failed else btype is None,
        },
    }
    return obs, raw


def build_sample_store(directory: Path, n: int = 400, seed: int = 5) -> tuple[Path, list[Verdict]]:
    """Write a synthetic store under `directory`; returns its path and the verdicts in it."""
    directory.mkdir(parents=True, exist_ok=True)
    verdicts, observations, raws = synthetic_corpus(n, seed)
    db = directory / "store.duckdb"
    write_store(db, verdicts, observations, raws, directory / "raw" / "measurements.jsonl")
    return db, verdicts
