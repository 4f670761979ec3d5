"""What the soak's samples and the webcam's log say against its targets: RSS growth after the first minute,
threads and open files back at their level after each outage, each outage logged once and ended in "back"; and
the Markdown section for benchmarks/RESULTS.md (`python -m benchmarks.soak_report OUT.json`)."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RSS_TARGET_MB = 5.0
SETTLE_S = 5.0  # after an outage, threads and files are compared this long after every source is live again
BACK_WITHIN_S = 120.0  # a "back" line this long after the camera returned still counts
# The webcam's log lines: "2026-12-06 16:20:01 NAME: dropped (why)", ": reconnecting (try n, next in s)",
# ": back (after s, try n)", ": failed: why".
DROPPED = re.compile(r": dropped\b")
BACK = re.compile(r": back\b")
RECONNECTING = re.compile(r": reconnecting\b")
FAILED = re.compile(r": failed\b")


def outages_report(
    outages: list[dict[str, Any]], lines: list[tuple[float, str]], names: dict[str, str], ended: float
) -> list[dict[str, Any]]:
    """Each outage with the webcam's log lines about its camera (those naming its host:port) from the moment
    it went away until its next outage, the end of the run, or BACK_WITHIN_S after it returned."""
    report = []
    for i, outage in enumerate(outages):
        key = re.sub(r"^\w+://([^@/]*@)?", "", names[outage["camera"]]).split("/")[0]
        later = [o["began"] for o in outages[i + 1 :] if o["camera"] == outage["camera"]]
        until = min([*later, ended, outage["ended"] + BACK_WITHIN_S])
        mine = [(t, text) for t, text in lines if outage["began"] - 0.5 <= t < until and key in text]
        back = [t for t, text in mine if BACK.search(text)]
        report.append(
            {
                "camera": outage["camera"],
                "start_s": outage["start_s"],
                "away_s": outage["away_s"],
                "began": round(outage["began"], 1),
                "ended": round(outage["ended"], 1),
                "dropped_lines": sum(bool(DROPPED.search(text)) for _, text in mine),
                "reconnecting_lines": sum(bool(RECONNECTING.search(text)) for _, text in mine),
                "failed_lines": sum(bool(FAILED.search(text)) for _, text in mine),
                "back": bool(back),
                "back_after_restart_s": round(back[0] - outage["ended"], 1) if back else None,
                "lines": [f"+{t - outage['began']:.1f}s {text}" for t, text in mine[:12]],
            }
        )
    return report


def jsonl_states(path: Path) -> dict[str, dict[str, int]]:
    """The `state` records of the run's JSONL, counted per source (short name) and event."""
    counts: dict[str, Counter[str]] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if '"type"' in line and '"state"' in line:
                    record = json.loads(line)
                    if record.get("type") == "state":
                        source = record.get("source") or {}
                        name = source.get("short_name") or source.get("name") or "run"
                        counts.setdefault(name, Counter())[record.get("event") or record.get("state")] += 1
    except OSError:
        return {}
    return {name: dict(c) for name, c in counts.items()}


def _all_live(sample: dict[str, Any]) -> bool:
    """Every camera serving and every source live again (the webcam's backoff may take up to 30 s longer)."""
    sources = ((sample.get("status") or {}).get("loop") or {}).get("sources") or []
    return bool(sources) and all(s.get("state") == "live" for s in sources)


def _level(values: list[int]) -> int | None:
    return Counter(values).most_common(1)[0][0] if values else None


def summarise(
    samples: list[dict[str, Any]], outages: list[dict[str, Any]], first_minute_s: float, interval_s: float
) -> dict[str, Any]:
    """The verdict on each target, with the figures behind it."""
    if not samples:
        return {"error": "no samples"}
    after = [s for s in samples if s["t_s"] >= first_minute_s] or samples[-1:]
    base, last = after[0], samples[-1]
    rss = [s["rss_mb"] for s in after]
    quiet = [s for s in after if not s.get("away") and _all_live(s)]
    level = {k: _level([s[k] for s in quiet]) for k in ("threads", "fds")}
    back_at = []
    for outage in outages:
        t_end = outage["start_s"] + outage["away_s"] + SETTLE_S
        sample = next((s for s in quiet if s["t_s"] >= t_end), None)
        back_at.append(
            {
                "camera": outage["camera"],
                "start_s": outage["start_s"],
                "during": _during(samples, outage),
                "after": {k: sample[k] for k in ("t_s", "threads", "fds")} if sample else None,
                # None: no sample with every camera back before the next outage or the end (not judged)
                "returned": all(sample[k] == level[k] for k in level) if sample else None,
            }
        )
    loads = [s["load"][0] for s in samples if s.get("load")]
    seconds = last["t_s"] - samples[0]["t_s"]
    status = last.get("status") or {}
    return {
        "samples": len(samples),
        "rss_mb": {"after_first_minute": base["rss_mb"], "end": last["rss_mb"], "max": max(rss)},
        "rss_growth_mb": round(last["rss_mb"] - base["rss_mb"], 2),
        "rss_max_growth_mb": round(max(rss) - base["rss_mb"], 2),
        "rss_target_met": max(rss) - base["rss_mb"] <= RSS_TARGET_MB,
        "level": level,
        "threads_seen": sorted(Counter(s["threads"] for s in samples).items()),
        "fds_seen": sorted(Counter(s["fds"] for s in samples).items()),
        "after_outages": back_at,
        "levels_target_met": all(o["returned"] is not False for o in back_at),
        "levels_judged": sum(o["returned"] is not None for o in back_at),
        "outages": len(outages),
        "logged_once": sum(o["dropped_lines"] == 1 for o in outages),
        "ended_in_back": sum(o["back"] for o in outages),
        "log_target_met": bool(outages) and all(o["dropped_lines"] == 1 and o["back"] for o in outages),
        "webcam_cpu_percent": round(100 * (last["cpu_s"] - samples[0]["cpu_s"]) / seconds, 1)
        if seconds
        else None,
        "load_1min": {"mean": round(sum(loads) / len(loads), 2), "max": max(loads)} if loads else None,
        "viewer": last.get("viewer"),
        "status_answered": sum(s.get("status") is not None for s in samples),
        "server_at_end": (status.get("server") or {}).get("streams"),
        "viewers_at_end": (status.get("server") or {}).get("viewers"),
        "interval_s": interval_s,
    }


def _during(samples: list[dict[str, Any]], outage: dict[str, Any]) -> dict[str, Any] | None:
    """Threads and open files while the camera was away (the largest seen), and the source's state."""
    inside = [s for s in samples if outage["start_s"] <= s["t_s"] < outage["start_s"] + outage["away_s"]]
    if not inside:
        return None
    return {"threads": max(s["threads"] for s in inside), "fds": max(s["fds"] for s in inside)}


def markdown(report: dict[str, Any]) -> str:
    """A RESULTS.md section's body from OUT.json."""
    s = report["summary"]
    o = report["options"]
    rows = [
        f"| {x['camera']} | {x['start_s']:.0f} | {x['away_s']:.0f} | {x['dropped_lines']} | "
        f"{x['reconnecting_lines']} | {'yes' if x['back'] else 'no'} | {x['back_after_restart_s'] or '-'} |"
        for x in report["outages"]
    ]
    levels = "; ".join(
        f"{a['camera']}@{a['start_s']:.0f}s: {a['after']['threads'] if a['after'] else '-'} threads / "
        f"{a['after']['fds'] if a['after'] else '-'} fds"
        for a in s["after_outages"]
    )
    rss, load = s["rss_mb"], s["load_1min"] or {}
    verdict = {True: "met", False: "MISSED"}
    return "\n".join(
        [
            f"{report['seconds'] / 60:.1f} min from {report['started']}; options {json.dumps(o)}",
            "",
            f"- RSS: {rss['after_first_minute']} MB after the first minute, {rss['end']} MB at the end, "
            f"{rss['max']} MB at most: growth {s['rss_growth_mb']} MB (max {s['rss_max_growth_mb']}); "
            f"target <= {RSS_TARGET_MB} MB {verdict[s['rss_target_met']]}.",
            f"- Threads / open files at rest: {s['level']['threads']} / {s['level']['fds']}; seen "
            f"{s['threads_seen']} / {s['fds_seen']}; after each outage (the first sample with every source "
            f"live): {levels}; judged {s['levels_judged']} of {s['outages']}; "
            f"target {verdict[s['levels_target_met']]}.",
            f"- Outages: {s['outages']}, logged once: {s['logged_once']}, ended in back: "
            f"{s['ended_in_back']}; target {verdict[s['log_target_met']]}. JSONL state records: "
            f"{json.dumps(report.get('jsonl_states'))}.",
            f"- webcam CPU {s['webcam_cpu_percent']} % of one core; load average (1 min) mean "
            f"{load.get('mean')}, max {load.get('max')}; /api/status answered {s['status_answered']} of "
            f"{s['samples']} samples; streams at the end {s['server_at_end']}, viewers {s['viewers_at_end']}; "
            f"viewer {s['viewer']}.",
            "",
            "| camera | at s | away s | dropped lines | reconnecting lines | back | back after restart s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
