"""Every file in tests/fixtures/ooni-samples is read, and its verdict agrees with what OONI's
fastpath expects for it (tests/fixtures/ooni-samples/SOURCE.md): anomaly iff bg > 0.5,
failure iff accuracy < 0.5, blocking_type where given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dideban.pipeline.analysis import Analysis, analyze
from dideban.pipeline.fingerprints import default_db
from dideban.pipeline.readers import RawMeasurement, ReadError, read_file, read_paths
from dideban.pipeline.rules import RULES_VERSION

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "ooni-samples"
PK = "20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.jsonc"
ID = "20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json"
IT = "webconnectivity_0.5.26_IT_full.json"


def analyses(name: str) -> list[Analysis]:
    items = list(read_file(SAMPLES / name))
    assert items and all(isinstance(i, RawMeasurement) for i in items), items
    return [analyze(i, default_db()) for i in items if isinstance(i, RawMeasurement)]


def one(name: str) -> Analysis:
    (a,) = analyses(name)
    return a


# (file, anomaly, failure, blocking_type): what fastpath's tests assert (bg/accuracy), or
# for files SOURCE.md only describes, the probe's own outcome where it is sound.
EXPECTED = [
    ("bug_351.json", True, False, "http-failure"),
    ("requests_none.json", True, False, "dns"),
    ("web_connectivity_odd_hdr.json", True, False, "dns"),
    ("web_connectivity_b64_hdr.json", True, False, "http-failure"),
    ("web_connectivity_b64_incorrect.json", False, False, None),
    ("web_connectivity_no_body.json", False, False, None),
    ("web_connectivity_null.json", False, True, None),
    ("report1.json", False, False, None),
    ("report2.json", False, False, None),
    ("test_keys_none.json", False, True, None),
    (IT, False, False, None),
    ("whatsapp.json", False, False, None),
    ("telegram_nourl.json", False, False, None),
    ("signal_022.json", False, False, None),
    ("signal_2627.json", False, True, None),
    ("signal_679.json", False, True, None),
    ("tor.json", False, False, None),
    ("tor_list.json", False, True, None),
    ("vanilla_tor.json", True, False, None),
    ("vanilla_tor_ok.json", False, False, None),
    ("torsf_1.json", True, False, None),
    ("torsf_2.json", False, False, None),
    ("torsf_383.json", False, True, None),
]


@pytest.mark.parametrize(("name", "anomaly", "failure", "blocking_type"), EXPECTED)
def test_sample_verdict_matches_fastpath(
    name: str, anomaly: bool, failure: bool, blocking_type: str | None
) -> None:
    v = one(name).verdict
    assert (v.anomaly, v.failure, v.blocking_type) == (anomaly, failure, blocking_type), v.rules
    assert v.rules and v.rules_version == RULES_VERSION
    assert v.raw_path is not None and v.raw_path.endswith(name)


def test_every_sample_file_is_read() -> None:
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".jsonc"))
    errors = [i for i in read_paths([SAMPLES]) if isinstance(i, ReadError)]
    # The one file that is not a measurement is probe-cli's analysis output.
    assert [Path(e.path).name for e in errors] == [
        "webconnectivity_0.5.26_IT_full.analysis_classic.json"
    ]
    measured = {Path(i.path).name for i in read_paths([SAMPLES]) if isinstance(i, RawMeasurement)}
    assert measured == {f.name for f in files} - {
        "webconnectivity_0.5.26_IT_full.analysis_classic.json"
    }


@pytest.mark.parametrize(
    "name", ["http_header_field_manipulation_1.json", "http_header_field_manipulation_2.json",
             "http_header_field_manipulation_3.json", "mbx-1.json", "mbx-2.json"]
)  # fmt: skip
def test_middlebox_samples_get_a_rule(name: str) -> None:
    v = one(name).verdict
    assert v.rules[0].split(".")[0] in ("hhfm", "hirl")


def test_hirl_tampering_is_an_anomaly() -> None:
    # mbx-1/2 record tampering=true: the request line came back changed.
    assert one("mbx-1.json").verdict.anomaly and one("mbx-1.json").verdict.rules == [
        "hirl.tampering"
    ]


def test_hhfm_without_any_response_is_a_failure() -> None:
    v = one("http_header_field_manipulation_3.json").verdict
    assert v.failure and not v.anomaly


def test_testmeasurement_jsonl_under_json_name() -> None:
    got = analyses("testmeasurement.json")
    assert len(got) == 2 and {a.verdict.test_name for a in got} == {"urlgetter"}
    assert all(a.verdict.rules == ["generic.unsupported"] for a in got)


def test_id_fingerprint_catches_probe_false_negative() -> None:
    v = one(ID).verdict
    assert v.probe_blocking == "false" and v.probe_accessible is True
    assert v.anomaly and v.confirmed and v.blocking_type == "http-diff"
    assert "ooni.id_lamanlabuh_kominfo" in v.fingerprints
    assert v.disagrees_with_probe and v.rules == ["wc.fp.http"]


def test_pk_icloud_private_relay_is_not_dns_blocking() -> None:
    # The probe said blocking=dns because the answers differ from the control's. But the
    # control, connecting to the probe's addresses, got the same TLS outcome (eof_error) as
    # with its own: the addresses are mask.icloud.com's, and both sides failed the same way.
    a = one(PK)
    v = a.verdict
    assert v.probe_blocking == "dns"
    assert "dns_inconsistent" not in a.facts
    assert not v.anomaly and v.rules == ["wc.both_failed"]
    assert v.disagrees_with_probe
    assert (v.dns_blocked, v.dns_ok) == (0.0, 1.0)


def test_it_full_agrees_with_probe_cli_classic_analysis() -> None:
    classic = json.loads(
        (SAMPLES / "webconnectivity_0.5.26_IT_full.analysis_classic.json").read_text()
    )
    a = one(IT)
    v = a.verdict
    final = classic["Linear"][0]
    assert final["HTTPResponseIsFinal"] and final["HTTPFailure"] == ""
    http = [o for o in a.observations if o.kind == "http"]
    assert http[0].http_status_code == final["HTTPResponseStatusCode"] == 200
    assert http[0].http_body_length == final["HTTPResponseBodyLength"]
    assert http[0].http_title == final["HTTPResponseTitle"]
    # Classic: valid DNS addresses, final response like the control's -> accessible.
    assert classic["DNSLookupSuccessWithValidAddressClassic"]
    assert classic["HTTPFinalResponseDiffStatusCodeMatch"] is True
    assert not v.anomaly and not v.failure and v.rules == ["wc.http.ok"]
    dns_ips = {o.ip for o in a.observations if o.kind == "dns" and o.ip}
    assert set(classic["ControlExpectations"]["DNSAddresses"]) <= dns_ips
    assert (v.dns_ok, v.tcp_ok, v.tls_ok, v.http_ok) == (1.0, 1.0, 1.0, 1.0)


def test_probe_outcome_kept_beside_and_disagreement_flagged() -> None:
    v = one("web_connectivity_no_body.json").verdict
    assert v.probe_blocking == "false" and not v.disagrees_with_probe
    b = one("web_connectivity_b64_hdr.json").verdict
    # A Check Point redirect in a base64 Location header: the current fingerprint set
    # names it (fastpath's older set did not); the fetch failed, so http-failure stands.
    assert b.confirmed and "cl.prod_checkpoint_urlfilter_forward" in b.fingerprints
    assert b.rules == ["wc.fp.http_failure"]


def test_verdict_never_reads_probe_blocking() -> None:
    # Flip the probe's own verdict fields: our verdict must not move.
    (raw,) = [i for i in read_file(SAMPLES / "bug_351.json") if isinstance(i, RawMeasurement)]
    before = analyze(raw, default_db()).verdict
    raw.doc["test_keys"]["blocking"] = False
    raw.doc["test_keys"]["accessible"] = True
    after = analyze(raw, default_db()).verdict
    assert (after.anomaly, after.blocking_type) == (before.anomaly, before.blocking_type)
    assert after.disagrees_with_probe and not before.disagrees_with_probe


def test_scores_are_well_formed_for_every_sample() -> None:
    for item in read_paths([SAMPLES]):
        if not isinstance(item, RawMeasurement):
            continue
        v = analyze(item, default_db()).verdict
        for layer in ("dns", "tcp", "tls", "http"):
            t = [getattr(v, f"{layer}_{k}") for k in ("blocked", "down", "ok")]
            assert all(0.0 <= x <= 1.0 for x in t)
            assert sum(t) == pytest.approx(0.0) or sum(t) == pytest.approx(1.0), (item.path, t)
