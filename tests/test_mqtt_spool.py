"""The MQTT spool on its own (no broker): order, the cursor across a restart of the process, a torn last line,
the size limit (oldest first, said once) and the age limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mgc_edge.runtime.sinks.mqtt.spool import Spool


def drain(spool: Spool) -> list[str]:
    out = []
    while (record := spool.next()) is not None:
        out.append(record.payload.decode())
        spool.commit(record.end)
    return out


def test_records_come_back_in_order_and_a_reopened_spool_resumes_at_its_cursor(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, 3600)
    for i in range(10):
        spool.append("t/0/events", f'{{"seq":{i}}}')
    first = [spool.next() for _ in range(4)]
    assert [r.payload for r in first if r] == [f'{{"seq":{i}}}'.encode() for i in range(4)]
    spool.commit(first[2].end)  # type: ignore[union-attr]  (the 4th was read, never acknowledged)
    spool.close()
    again = Spool(tmp_path, 1 << 20, 3600)
    assert again.pending == 7
    assert drain(again) == [f'{{"seq":{i}}}' for i in range(3, 10)]
    again.close()


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, 3600)
    spool.append("t", '{"a":1}')
    spool.close()
    segment = next(tmp_path.glob("*.log"))
    with open(segment, "ab") as f:
        f.write(b'123.0\tt\t{"half')
    again = Spool(tmp_path, 1 << 20, 3600)
    again.append("t", '{"a":2}')
    assert drain(again) == ['{"a":1}', '{"a":2}']


def test_a_full_spool_drops_the_oldest_and_says_so_once(tmp_path: Path) -> None:
    said: list[str] = []
    spool = Spool(tmp_path, 64 * 1024, 3600, said.append)
    payload = '{"x":"' + "y" * 200 + '","seq":%d}'
    for i in range(2000):
        spool.append("t", payload % i)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.log")) <= 64 * 1024
    left = drain(spool)
    assert spool.dropped > 0 and spool.dropped + len(left) == 2000
    assert left == [payload % i for i in range(spool.dropped, 2000)]  # the newest kept, in order
    assert len(said) == 1 and "full" in said[0]


def test_records_older_than_the_age_limit_are_dropped(tmp_path: Path) -> None:
    now = [1000.0]
    spool = Spool(tmp_path, 1 << 20, 60, clock=lambda: now[0])
    spool.append("t", '"old"')
    now[0] += 30
    spool.append("t", '"young"')
    now[0] += 45
    assert drain(spool) == ['"young"'] and spool.dropped == 1


def test_a_spool_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    code = f"from mgc_edge.runtime.sinks.mqtt.spool import Spool; Spool({str(tmp_path)!r}, 1 << 20, 60); print('ok')"
    held = Spool(tmp_path, 1 << 20, 3600)
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.returncode != 0 and "is in use by another running command" in other.stderr
    held.close()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "ok", again.stderr
