"""A verdict explained in words, from what the pipeline recorded.

The pipeline records the ids of the rules that decided (`Verdict.rules`), the fingerprints
that matched, per-layer scores and the observations (one row per DNS answer, TCP connect, TLS
handshake, HTTP exchange) with their failures. This module only restates that evidence; it
never re-decides anything.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAYERS = (("dns", "DNS"), ("tcp", "TCP connect"), ("tls", "TLS handshake"), ("http", "HTTP"))
_BLOCKING_WORDS = {
    "dns": "DNS tampering: the resolver's answer differs from the control's or points to a blockpage",
    "tcp_ip": "TCP/IP blocking: connections to the site's addresses fail while the control's succeed",
    "tls": "TLS interference: the handshake fails (reset, timeout or bad certificate) while the control's succeeds",
    "http-failure": "HTTP failure: the request fails while the control's succeeds",
    "http-diff": "HTTP difference: the page differs from the control's (often a blockpage)",
}


def rule_descriptions() -> dict[str, str]:
    """Rule id -> description, when the pipeline publishes a rule table (else empty)."""
    try:
        rules_module = importlib.import_module("dideban.pipeline.rules")
    except ImportError:
        return {}
    table: Any = getattr(rules_module, "RULES", None)
    out: dict[str, str] = {}
    if isinstance(table, dict):
        items: Any = table.values()
    elif isinstance(table, list | tuple):
        items = table
    else:
        return {}
    for rule in items:
        rid = getattr(rule, "id", None) or (rule.get("id") if isinstance(rule, dict) else None)
        desc = getattr(rule, "description", None) or (
            rule.get("description") if isinstance(rule, dict) else None
        )
        if rid and desc:
            out[str(rid)] = str(desc)
    return out


def _obs_label(obs: dict[str, Any]) -> str:
    kind = obs.get("kind")
    if kind == "dns":
        return f"DNS lookup of {obs.get('hostname') or '?'} ({obs.get('dns_engine') or 'resolver'})"
    if kind == "tcp":
        return f"TCP connect to {obs.get('ip')}:{obs.get('port')}"
    if kind == "tls":
        return f"TLS handshake with {obs.get('ip')}:{obs.get('port')} (SNI {obs.get('tls_server_name')})"
    return f"HTTP request {obs.get('http_request_url') or ''}".strip()


def explain(verdict: dict[str, Any], observations: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary sentence, the rules (with descriptions when known) and the evidence."""
    descriptions = rule_descriptions()
    target = verdict.get("input") or verdict.get("domain") or f"the {verdict.get('test_name')} test"
    where = f"{verdict.get('probe_cc')} / {verdict.get('probe_asn')}"
    btype = verdict.get("blocking_type")
    if verdict.get("confirmed"):
        summary = (
            f"{target} was confirmed blocked from {where}: a known blockpage fingerprint matched."
        )
    elif verdict.get("anomaly") and btype:
        how = _BLOCKING_WORDS.get(str(btype), str(btype))
        summary = f"{target} looked blocked from {where} ({how})."
    elif verdict.get("anomaly"):
        summary = f"{target} showed an anomaly from {where}; the rules below say which."
    elif verdict.get("failure"):
        summary = f"The measurement of {target} from {where} failed: no verdict can be drawn."
    else:
        summary = f"No sign of blocking of {target} from {where}."
    decided = [descriptions[r] for r in verdict.get("rules") or [] if r in descriptions]
    if decided:
        summary += " " + " ".join(d.rstrip(".") + "." for d in decided)

    evidence: list[str] = []
    for name in verdict.get("fingerprints") or []:
        evidence.append(f"Fingerprint {name} matched.")
    for obs in observations:
        label = _obs_label(obs)
        if obs.get("failure"):
            evidence.append(f"{label} failed with {obs['failure']}.")
        for fp in obs.get("fingerprints") or []:
            evidence.append(f"{label} matched fingerprint {fp}.")
    scores = []
    for key, label in _LAYERS:
        blocked = float(verdict.get(f"{key}_blocked") or 0.0)
        down = float(verdict.get(f"{key}_down") or 0.0)
        ok = float(verdict.get(f"{key}_ok") or 0.0)
        scores.append({"layer": label, "blocked": blocked, "down": down, "ok": ok})
        if blocked >= 0.5:
            evidence.append(f"{label} scored blocked {blocked:.2f} (down {down:.2f}, ok {ok:.2f}).")
    if verdict.get("disagrees_with_probe"):
        evidence.append(
            f"The probe itself said blocking={verdict.get('probe_blocking')!r}, "
            f"accessible={verdict.get('probe_accessible')!r}; Dideban's analysis disagrees."
        )
    rules = [
        {"id": rid, "description": descriptions.get(rid)} for rid in verdict.get("rules") or []
    ]
    return {"summary": summary, "rules": rules, "evidence": evidence, "scores": scores}
