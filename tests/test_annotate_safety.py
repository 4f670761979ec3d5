"""`annotate` never loses a researcher's work and never scores against the wrong truth (issue 29), one test or
more per point: outputs it did not write are kept (and --force keeps them as .bak), truth files are matched like
the output names, smoothing means the same with --every, segments are scored on the truth's frames, the
completion record is what says a video is up to date, summary.json is merged per video, truth CSVs are read
as Excel writes them, a timeline follows its truth, and the smaller points."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pympi
import pytest
from test_runtime_loop import colour_model, colour_video
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.runtime.recorded.outputs import timeline_png

runner = CliRunner()
FPS = 20.0
SEGMENTS = [("1", 12), ("3", 10), ("2", 14), ("1", 12)]  # 48 frames


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def closing(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flat(text: str) -> str:
    """Text without its white space: a sentence (or a path) wrapped to the terminal, read whole."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("safety")
    model = colour_model(root / "colour.onnx")
    labels = colour_video(root / "session.mp4", SEGMENTS, FPS)
    other = colour_video(root / "other.mp4", SEGMENTS[:2] * 3, FPS)  # 132 frames
    truth = root / "session.csv"
    truth.write_text("frame,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    return {"root": root, "model": model, "session": root / "session.mp4", "other": root / "other.mp4",
            "labels": labels, "other_labels": other, "truth": truth}  # fmt: skip


def researchers_eaf(path: Path, value: str = "waving") -> Path:
    """An .eaf made by someone else (pympi, another author, no mgc-edge settings)."""
    doc = pympi.Elan.Eaf(author="a researcher")
    doc.add_tier("hands")
    doc.add_annotation("hands", 0, 600, value)
    pympi.Elan.to_eaf(str(path), doc)
    return path


# 1. Hand-made or hand-corrected files are never overwritten without --force.


def test_a_truth_folder_that_is_also_the_output_folder_is_refused(
    media: dict[str, Any], tmp_path: Path
) -> None:
    hand = tmp_path / "hand"
    hand.mkdir()
    truth = researchers_eaf(hand / "session.eaf", "Class 1")
    before = sha(truth)
    for extra in ([], ["--force"]):
        result = invoke("annotate", media["model"], media["session"], "--truth", hand, "--out", hand, *extra)
        assert result.exit_code == 2, result.output
        assert (
            flat("is also where annotate would write") in flat(result.output)
            and "Traceback" not in result.output
        )
        assert sha(truth) == before and sorted(p.name for p in hand.iterdir()) == ["session.eaf"]


def test_a_researchers_own_file_is_kept_and_named_and_force_keeps_it_as_bak(
    media: dict[str, Any], tmp_path: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(media["session"], videos / "session.mp4")
    shutil.copy(media["other"], videos / "other.mp4")
    out = tmp_path / "annotations"
    out.mkdir()
    theirs = researchers_eaf(out / "session.eaf")
    before = sha(theirs)
    result = invoke("annotate", media["model"], videos, "--out", out)
    assert result.exit_code == 1, result.output
    line = closing(result)
    assert (line["done"], line["refused"]) == (1, 1)  # the other video is done all the same
    assert sha(theirs) == before and not (out / "session.frames.csv").exists()
    assert (
        flat(f"kept {theirs}: annotate has no record of writing it (someone else's") in flat(result.output)
        and "--force" in result.output
    )
    # --force: the new file, the old one beside it; a second foreign file never replaces that backup.
    result = invoke("annotate", media["model"], videos, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert sha(out / "session.eaf.bak") == before and sha(out / "session.eaf") != before
    assert flat("kept the old session.eaf as session.eaf.bak") in flat(result.output)
    researchers_eaf(out / "session.eaf", "nodding")
    second = sha(out / "session.eaf")
    assert invoke("annotate", media["model"], videos, "--out", out, "--force").exit_code == 0
    assert sha(out / "session.eaf.bak") == before and sha(out / "session.eaf.bak2") == second


def test_a_file_corrected_in_elan_is_kept_whatever_the_settings(
    media: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["annotate", media["model"], media["session"], "--out", out]
    assert invoke(*args).exit_code == 0
    eaf = out / "session.eaf"
    corrected = eaf.read_text().replace("class 3", "class 2")  # the researcher fixes a label in ELAN
    eaf.write_text(corrected)
    for extra in ([], ["--min-seconds", "0.5"]):
        result = invoke(*args, *extra)
        assert result.exit_code == 1, result.output
        assert eaf.read_text() == corrected and flat("not written by annotate, or changed since") in flat(
            result.output
        )
    assert invoke(*args, "--min-seconds", "0.5", "--force").exit_code == 0
    assert (out / "session.eaf.bak").read_text() == corrected


# 2. A truth is found like an output name; an ambiguous one is an error naming the candidates.


def test_one_truth_is_never_used_for_videos_sharing_a_stem(media: dict[str, Any], tmp_path: Path) -> None:
    coll = tmp_path / "coll"
    for rel in ("monday/s1.avi", "monday/s1.mp4", "tuesday/s1.avi"):
        (coll / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media["session"], coll / rel)
    truths = tmp_path / "truths"
    truths.mkdir()
    shutil.copy(media["truth"], truths / "s1.csv")
    result = invoke("annotate", media["model"], coll, "--truth", truths, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    message = flat(result.output)
    assert flat(f"Truth {truths / 's1.csv'} fits 3 videos named s1") in message
    assert all(str(coll / rel) in message for rel in ("monday/s1.avi", "monday/s1.mp4", "tuesday/s1.avi"))
    # By the video's output name, or at its path inside the truth folder: each its own; the third unscored.
    (truths / "s1.csv").rename(truths / "s1-monday-avi.csv")
    (truths / "tuesday").mkdir()
    shutil.copy(media["truth"], truths / "tuesday" / "s1.csv")
    result = invoke("annotate", media["model"], coll, "--truth", truths, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    videos = {v["name"]: v for v in json.loads((tmp_path / "out" / "summary.json").read_text())["videos"]}
    assert videos["s1-monday-avi"]["truth"] == str(truths / "s1-monday-avi.csv")
    assert videos["s1-tuesday-avi"]["truth"] == str(truths / "tuesday" / "s1.csv")
    assert "truth" not in videos["s1-monday-mp4"] and flat("No truth for 1 video(s) (s1-monday-mp4)") in flat(
        result.output
    )


# 3. Smoothing is set in time: --every does not weaken it.


def test_every_does_not_slow_the_smoothing(media: dict[str, Any], tmp_path: Path) -> None:
    video = tmp_path / "steps.mp4"
    labels = colour_video(video, [("1", 40), ("3", 40), ("2", 40)], FPS)

    def lag(every: int) -> list[float]:
        out = tmp_path / f"every{every}"
        result = invoke(
            "annotate", media["model"], video, "--out", out, "--every", every, "--smooth", "ema:0.3s"
        )
        assert result.exit_code == 0, result.output
        got = rows(out / "steps.frames.csv")
        lags = []
        for change in (40, 80):
            after = [r for r in got if int(r["frame"]) >= change and r["smoothed_label"] == labels[change]]
            lags.append(float(after[0]["time"]) - change / FPS)
        return lags

    one, five = lag(1), lag(5)
    assert all(0 < a < 0.6 for a in one)
    assert all(abs(b - a) <= 5 / FPS for a, b in zip(one, five))  # the same in seconds, to a step of --every
    result = invoke("annotate", media["model"], video, "--out", tmp_path / "old", "--smooth", "ema:0.3")
    assert flat("per-frame form, read at 30 frames/s as ema:0.0935s") in flat(result.output)


# 4. Segments are scored on the frames the truth labels, in frames.


def score(media: dict[str, Any], tmp_path: Path, truth: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    out = tmp_path / f"out-{truth.stem}"
    result = invoke("annotate", media["model"], media["session"], "--truth", truth, "--out", out)
    assert result.exit_code == 0, result.output
    video = json.loads((out / "summary.json").read_text())["videos"][0]
    return closing(result), video, flat(result.output)


def test_a_truth_shorter_than_the_video_scores_only_its_frames(media: dict[str, Any], tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("frame,label\n" + "".join(f"{i},{x}\n" for i, x in enumerate(media["labels"][:30])))
    line, video, output = score(media, tmp_path, short)
    s = video["scores"]
    assert (s["segments_true"], s["segments_predicted"], s["segments_matched"]) == (3, 3, 3)
    assert line["segment_precision"] == line["segment_recall"] == 1.0 and s["scored_frames"] == 30
    assert flat("18 of 48 classified frames have no truth (18 after its end)") in output


def test_a_truth_one_row_longer_has_no_sliver_segment(media: dict[str, Any], tmp_path: Path) -> None:
    longer = tmp_path / "longer.csv"
    labels = [*media["labels"], media["labels"][-1]]
    longer.write_text("frame,label\n" + "".join(f"{i},{x}\n" for i, x in enumerate(labels)))
    line, video, output = score(media, tmp_path, longer)
    assert video["scores"]["segments_true"] == 4 and line["segment_recall"] == 1.0
    assert flat("1 truth row(s) lie past the last frame classified or skipped (47)") in output


def test_gaps_in_an_eaf_truth_are_left_out_of_the_segment_scores(
    media: dict[str, Any], tmp_path: Path
) -> None:
    doc = pympi.Elan.Eaf(author="a researcher")
    doc.add_tier("gesture")
    start = 0
    for label, n in SEGMENTS:  # each segment annotated but for its last 4 frames (200 ms)
        doc.add_annotation("gesture", start * 50, (start + n - 4) * 50, f"Class {label}")
        start += n
    pympi.Elan.to_eaf(str(tmp_path / "gaps.eaf"), doc)
    line, video, output = score(media, tmp_path, tmp_path / "gaps.eaf")
    assert line["segment_precision"] == 1.0 and line["segment_recall"] == 1.0
    assert (
        flat("16 of 48 classified frames have no truth") in output
        and video["scores"]["unlabelled_frames"] == 16
    )


# 5. A run killed between the renames leaves files that the next run does again, and no temporary file.


def test_a_run_stopped_between_renames_is_not_up_to_date(
    media: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgc_edge.runtime.recorded import ownership

    out = tmp_path / "out"
    args = ["annotate", media["model"], media["session"], "--out", out]
    assert invoke(*args).exit_code == 0
    real, calls = ownership.os.replace, {"n": 0}

    def dies_at_the_second(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit(137)  # as a SIGKILL would: nothing after this runs
        real(src, dst)

    monkeypatch.setattr(ownership.os, "replace", dies_at_the_second)
    invoke(*args, "--topk", "3")
    monkeypatch.undo()
    orphan = out / f".session.eaf.{2**22 + 7}-0000.tmp.eaf"  # a temporary file of a process that is gone
    orphan.write_text("half")
    result = invoke(*args, "--topk", "3")
    assert result.exit_code == 0, result.output
    assert closing(result)["done"] == 1  # not "kept (up to date)"
    assert "top3" in rows(out / "session.frames.csv")[0]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


# 6. Up to date is the completion record's to say, not the files' times.


def test_another_video_copied_over_with_old_times_is_done_again(
    media: dict[str, Any], tmp_path: Path
) -> None:
    video = tmp_path / "s.mp4"
    shutil.copy(media["session"], video)
    out = tmp_path / "out"
    assert invoke("annotate", media["model"], video, "--out", out).exit_code == 0
    shutil.copy2(media["other"], video)  # cp -p: its old times come along
    old = (out / "s.frames.csv").stat().st_mtime - 3600
    import os

    os.utime(video, (old, old))
    result = invoke("annotate", media["model"], video, "--out", out)
    assert closing(result)["done"] == 1 and len(rows(out / "s.frames.csv")) == len(media["other_labels"])


# 7. summary.json is merged per video; a failed or partial run erases nothing.


def test_summary_is_merged_per_video(media: dict[str, Any], tmp_path: Path) -> None:
    videos, truths, out = tmp_path / "videos", tmp_path / "truths", tmp_path / "out"
    videos.mkdir()
    truths.mkdir()
    for name in ("a", "b"):
        shutil.copy(media["session"], videos / f"{name}.mp4")
        shutil.copy(media["truth"], truths / f"{name}.csv")
    assert invoke("annotate", media["model"], videos, "--truth", truths, "--out", out).exit_code == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["overall"]["videos"] == 2 and first["overall"]["scored_frames"] == 96
    assert (
        first["iou_threshold"] == 0.5 and first["version"] and first["date"] and first["truth"] == str(truths)
    )
    assert "truth_tier" in first
    # A subset: the other video's entry and the overall over both stay.
    result = invoke("annotate", media["model"], videos / "a.mp4", "--truth", truths / "a.csv", "--out", out)
    assert result.exit_code == 0, result.output
    merged = json.loads((out / "summary.json").read_text())
    assert [v["name"] for v in merged["videos"]] == ["a", "b"] and merged["overall"] == first["overall"]
    # Someone else's summary.json is never merged into nor replaced without --force.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "summary.json").write_text("my notes")
    result = invoke("annotate", media["model"], videos / "a.mp4", "--out", theirs)
    assert result.exit_code == 2 and (theirs / "summary.json").read_text() == "my notes"
    assert invoke("annotate", media["model"], videos / "a.mp4", "--out", theirs, "--force").exit_code == 0
    assert (theirs / "summary.json.bak").read_text() == "my notes"
    # A run where every video fails: nothing earlier is lost.
    broken = tmp_path / "broken" / "a.mp4"
    broken.parent.mkdir()
    broken.write_text("not a video")
    assert invoke("annotate", media["model"], broken, "--out", out).exit_code == 1
    after = json.loads((out / "summary.json").read_text())
    entry = {v["name"]: v for v in after["videos"]}["a"]
    assert entry["status"] in ("done", "kept") and entry["last_run"]["status"] == "failed"
    assert after["overall"] == first["overall"]


# 8. Truth CSVs as spreadsheets write them; what is wrong is named.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\ufeffframe,label\n", "has the header frame,label but no rows"),
        (
            "frame,gesture\n0,1\n",
            "needs the columns frame,label (or frame,class); its header is frame,gesture",
        ),
        ("frame,label\n0,1\n1,2\n0,3\n", "line 4: frame 0 is given twice"),
    ],
)
def test_truth_csv_errors_name_what_was_found(
    media: dict[str, Any], tmp_path: Path, text: str, message: str
) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text(text, encoding="utf-8")
    result = invoke("annotate", media["model"], media["session"], "--truth", truth, "--out", tmp_path / "o")
    assert result.exit_code == 2 and flat(message) in flat(result.output) and "Traceback" not in result.output


def test_excel_csv_with_a_bom_and_a_class_column_is_read(media: dict[str, Any], tmp_path: Path) -> None:
    truth = tmp_path / "t.csv"
    body = "".join(f"{i},{x}\r\n" for i, x in enumerate(media["labels"]))
    truth.write_bytes(("\ufeffFrame,Class\r\n" + body).encode("utf-8"))
    line, _, _ = score(media, tmp_path, truth)
    assert line["scored_frames"] == 48 and line["segment_f1"] == 1.0


# 9. A kept video scored against a new truth gets a new timeline.


def test_a_new_truth_redraws_the_timeline(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["annotate", media["model"], media["session"], "--out", out, "--plot", "--truth"]
    assert invoke(*args, media["truth"]).exit_code == 0
    first = sha(out / "session.timeline.png")
    again = invoke(*args, media["truth"])
    assert closing(again)["kept"] == 1 and sha(out / "session.timeline.png") == first
    other = tmp_path / "other.csv"
    other.write_text("frame,label\n" + "".join(f"{i},2\n" for i in range(48)))
    result = invoke(*args, other)
    assert closing(result)["kept"] == 1 and sha(out / "session.timeline.png") != first


# 10. The smaller points.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "-1"], "--threads must be 0"),
        (["--truth-tier", "hands"], "--truth-tier hands needs --truth"),
    ],
)
def test_more_bad_options_are_one_sentence(
    media: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke("annotate", media["model"], media["session"], "--out", tmp_path / "o", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_topk_above_the_classes_is_recorded_as_written(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("annotate", media["model"], media["session"], "--out", out, "--topk", 20)
    assert result.exit_code == 0 and flat("the model has 3 classes") in flat(result.output)
    assert json.loads((out / "summary.json").read_text())["settings"]["topk"] == 3
    assert list(rows(out / "session.frames.csv")[0])[-3:] == ["prob1", "prob2", "prob3"]


def test_two_identical_runs_write_identical_files(media: dict[str, Any], tmp_path: Path) -> None:
    for name in ("one", "two"):
        assert invoke("annotate", media["model"], media["session"], "--out", tmp_path / name).exit_code == 0
    for suffix in (".eaf", ".frames.csv", ".segments.csv"):
        assert sha(tmp_path / "one" / f"session{suffix}") == sha(tmp_path / "two" / f"session{suffix}")


def test_stdout_says_which_frames_it_counts(media: dict[str, Any], tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("frame,label\n" + "".join(f"{i},{x}\n" for i, x in enumerate(media["labels"][:30])))
    line, _, _ = score(media, tmp_path, short)
    assert (line["frames"], line["scored_frames"]) == (48, 30)


def test_a_long_video_name_is_not_chopped(media: dict[str, Any], tmp_path: Path) -> None:
    name = "p017-session-2-left"
    shutil.copy(media["session"], tmp_path / f"{name}.mp4")
    args = ["--out", tmp_path / "out", "--truth", media["truth"]]
    result = invoke("annotate", media["model"], tmp_path / f"{name}.mp4", *args)
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if "done" in line]
    assert any(line.strip().startswith(name) for line in table), result.output  # the table's row, whole


def test_an_interruption_says_that_a_rerun_resumes(
    media: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgc_edge.runtime.recorded import recorder

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.Recorder, "add", stop)
    result = invoke("annotate", media["model"], media["session"], "--out", tmp_path / "out")
    assert result.exit_code == 130 and flat("the same command again resumes") in flat(result.output)


def test_the_timeline_axis_uses_one_format_and_names_the_grey(monkeypatch: pytest.MonkeyPatch) -> None:
    short = [timeline_png._clock(t, 40.0) for t in (0, 5, 10, 35)]
    long = [timeline_png._clock(t, 600.0) for t in (0, 5, 60, 590)]
    assert short == ["0s", "5s", "10s", "35s"] and long == ["0:00", "0:05", "1:00", "9:50"]
    real, legends = timeline_png._legend_layout, []

    def spy(labels: Any, names: Any, width: int) -> Any:
        placed = real(labels, names, width)
        legends.append([text for _, text, _, _ in placed[0]])
        return placed

    monkeypatch.setattr(timeline_png, "_legend_layout", spy)
    seg = timeline_png.Segment(0, 9, 0.0, 1.0, "1")
    image = timeline_png.draw_timeline(
        [timeline_png.Row("truth", [seg])], (0.0, 10.0), ["1"], {"1": "class 1"}
    )
    assert legends == [["1: class 1", "none: no truth, or background"]]
    assert (image == np.array(timeline_png._EMPTY, np.uint8)).all(axis=2).any()
