#!/usr/bin/env python3
"""Check a hindsight recording against its sidecar, with ffprobe as the judge.

    python3 tools/check-recording.py recordings/2026_11_21/video/rec_..._cam0.mkv [...]

For each file it checks what an analysis will rely on:
  * ffprobe reads every frame, and there are as many as the sidecar has rows;
  * each frame's pts (ffprobe) equals the sidecar's pts, and equals its LSL time minus the
    first frame's LSL time (Tag LSL_FIRST_FRAME_TIME) within half the 100 us unit;
  * frame numbers have no gaps (or reports where frames are missing);
  * where the sidecar has exposure columns (libcamera cameras), each frame's JPEG carries
    the same exposure time and gain (its Exif ExposureTime and ISOSpeedRatings, ffprobe);
  * the file is finished (duration present) - otherwise: `hindsight repair FILE`.
Exit code 0 if every file passes, 1 otherwise. Needs only Python 3 and ffprobe.
"""

import csv
import json
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

HALF_UNIT = Decimal("0.00005")


def ffprobe(args, path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def check(mkv: Path) -> list[str]:
    problems = []
    sidecar = mkv.with_suffix(".frames.csv")
    if not sidecar.exists():
        return [f"no sidecar {sidecar.name}"]
    with sidecar.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fmt = json.loads(ffprobe(["-show_format", "-of", "json"], mkv))["format"]
    tags = {k.upper(): v for k, v in fmt.get("tags", {}).items()}
    if "duration" not in fmt:
        problems.append("not finished (no duration): run `hindsight repair FILE`")
    pts = [
        Decimal(line.strip().rstrip(","))
        for line in ffprobe(
            ["-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"], mkv
        ).split()
        if line.strip()
    ]
    decoded = int(
        ffprobe(
            ["-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=nb_read_frames", "-of", "csv=p=0"],
            mkv,
        ).strip()
    )
    if decoded != len(rows):
        problems.append(f"ffprobe decodes {decoded} frames, the sidecar lists {len(rows)}")
    if len(pts) != len(rows):
        problems.append(f"{len(pts)} packets in the file, {len(rows)} rows in the sidecar")
    first = tags.get("LSL_FIRST_FRAME_TIME")
    if first is None:
        problems.append("no LSL_FIRST_FRAME_TIME tag")
    elif rows and rows[0]["lsl_time"] != first:
        problems.append(f"first row's lsl_time {rows[0]['lsl_time']} != tag {first}")
    for i, (p, r) in enumerate(zip(pts, rows)):
        if abs(p - Decimal(r["pts"])) > Decimal("0.000001"):
            problems.append(f"row {i + 1}: pts {p} in the file, {r['pts']} in the sidecar")
            break
        if first is not None:
            offset = Decimal(r["lsl_time"]) - Decimal(first)
            if abs(p - offset) > HALF_UNIT:
                problems.append(f"row {i + 1}: pts {p} but LSL offset {offset}")
                break
    if rows and "exposure_us" in rows[0]:
        problem = check_exposures(mkv, rows)
        if problem:
            problems.append(problem)
    numbers = [int(r["frame_number"]) for r in rows]
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    if gaps:
        missing = sum(b - a - 1 for a, b in gaps)
        problems.append(
            f"{missing} frames missing in {len(gaps)} gaps, first after frame {gaps[0][0]}"
        )
    if not problems:
        pre = sum(r["pre_trigger"] == "1" for r in rows)
        exposure = (
            ", each frame's exposure and gain in its JPEG as in the sidecar"
            if rows and "exposure_us" in rows[0]
            else ""
        )
        print(
            f"OK {mkv}: {len(rows)} frames ({pre} before the trigger), "
            f"frames {numbers[0] if numbers else '-'}..{numbers[-1] if numbers else '-'}, "
            f"{fmt.get('duration', '?')} s{exposure}"
        )
    return problems


def check_exposures(mkv: Path, rows: list[dict]) -> str | None:
    """The first frame whose JPEG says another exposure than its sidecar row, if any."""
    frames = json.loads(
        ffprobe(
            ["-select_streams", "v:0", "-show_entries",
             "frame_tags=ExposureTime,ISOSpeedRatings", "-of", "json"],
            mkv,
        )
    )["frames"]
    if len(frames) != len(rows):
        return f"{len(frames)} frames with tags in the file, {len(rows)} rows in the sidecar"
    for i, (f, r) in enumerate(zip(frames, rows)):
        tags = f.get("tags", {})
        said = tags.get("ExposureTime", "").strip()
        time = Fraction(said.replace(":", "/")) * 1_000_000 if said else None
        row_time = Fraction(r["exposure_us"]) if r["exposure_us"] else None
        if time != row_time:
            return (
                f"row {i + 1} (frame {r['frame_number']}): exposure_us {r['exposure_us'] or '-'} "
                f"in the sidecar, ExposureTime {said or '-'} s in the frame"
            )
        iso = tags.get("ISOSpeedRatings", "").strip()
        if r["analogue_gain"]:
            gain = float(r["analogue_gain"]) * float(r["digital_gain"] or 1)
            if not iso or abs(int(iso) - 100 * gain) > 0.51:
                return (
                    f"row {i + 1} (frame {r['frame_number']}): gains {r['analogue_gain']} x "
                    f"{r['digital_gain'] or 1} in the sidecar, ISO {iso or '-'} in the frame"
                )
        elif iso:
            return f"row {i + 1} (frame {r['frame_number']}): no gain in the sidecar, ISO {iso} in the frame"
    return None


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    failed = False
    for arg in sys.argv[1:]:
        for problem in check(Path(arg)):
            print(f"FAIL {arg}: {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
