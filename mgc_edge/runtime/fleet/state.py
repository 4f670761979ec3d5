"""What the fleet knows: per box its retained status (online / offline, model, live-view link, counters) and
per camera the newest event (smoothed label, state, fps) with the time each was seen. Fed from the
subscriber's thread, read by the page's requests: one lock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

SILENT_S = 20.0  # a box online by its status but unheard for this long is shown as silent


class FleetState:
    """The boxes under one prefix, built from their messages (`message(topic, payload)`)."""

    def __init__(self, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.prefix, self.clock = prefix, clock
        self._lock = threading.Lock()
        self._boxes: dict[str, dict[str, Any]] = {}
        self.messages = 0
        self.unreadable = 0

    def message(self, topic: str, payload: bytes) -> None:
        """One message from the broker: `PREFIX/BOX/status` or `PREFIX/BOX/SOURCE/events`; others ignored."""
        levels = topic[len(self.prefix) + 1 :].split("/") if topic.startswith(self.prefix + "/") else []
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        now = self.clock()
        with self._lock:
            self.messages += 1
            if not isinstance(data, dict) or len(levels) not in (2, 3):
                self.unreadable += 1
                return
            box = self._boxes.setdefault(levels[0], {"box": levels[0], "sources": {}, "seen": now})
            box["seen"] = now
            if len(levels) == 2 and levels[1] == "status":
                box["status"] = data
                for entry in data.get("sources") or []:
                    if isinstance(entry, dict) and "index" in entry:
                        source = box["sources"].setdefault(
                            int(entry["index"]), {"index": int(entry["index"])}
                        )
                        source.update({k: entry.get(k) for k in ("name", "kind", "state", "fps")})
                        if entry.get("smoothed") and "label" not in source:
                            source["label"] = entry["smoothed"]
            elif len(levels) == 3 and levels[2] == "events" and levels[1].isdigit():
                source = box["sources"].setdefault(int(levels[1]), {"index": int(levels[1])})
                source["seen"] = now
                source["name"] = (data.get("source") or {}).get("name", source.get("name"))
                source["state"] = data.get("state", source.get("state"))
                if "smoothed" in data:
                    source["label"] = data["smoothed"]
                    source["fps"] = data.get("fps", source.get("fps"))
                    source["frame"] = data.get("frame")
                if data.get("message"):
                    source["message"] = data["message"]
                source["seq"] = data.get("seq")
            else:
                self.unreadable += 1

    def snapshot(self) -> dict[str, Any]:
        """Every box and camera, with seconds since each was last heard (the page's /api/status)."""
        now = self.clock()
        with self._lock:
            boxes = []
            for name in sorted(self._boxes):
                box = self._boxes[name]
                status = box.get("status") or {}
                state = status.get("state", "unknown")
                if state == "online" and now - box["seen"] > SILENT_S:
                    state = "silent"
                sources = [
                    {**s, "last_seen_s": round(now - s["seen"], 1) if "seen" in s else None}
                    for _, s in sorted(box["sources"].items())
                ]
                for s in sources:
                    s.pop("seen", None)
                boxes.append(
                    {
                        "box": name,
                        "state": state,
                        "model": status.get("model"),
                        "live": status.get("live"),
                        "publish": status.get("publish"),
                        "last_seen_s": round(now - box["seen"], 1),
                        "sources": sources,
                    }
                )
            return {
                "prefix": self.prefix,
                "boxes": boxes,
                "messages": self.messages,
                "unreadable": self.unreadable,
            }
