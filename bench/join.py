"""Joining video segments with PyAV (`atelier.media.video.join_segments`): time and peak
memory to join a few and many segments, in a fresh process each, so that the memory
figure is the join's own. Streaming frame by frame should keep the peak flat as the
video gets longer; holding every frame would need frames x width x height x 3 bytes.
The segments are made like the fake's first-last-frame clips: each starts on the
keyframe the previous one ended on."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from atelier.media import scoring
from atelier.testing import motion
from atelier.testing.values import Guide, pattern_image
from bench.harness import report

CHILD = """
import json, resource, sys, time
from pathlib import Path
from atelier.media import video
paths = [Path(p) for p in sys.argv[2:]]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
info = video.join_segments(paths, Path(sys.argv[1]), fps=16, crf=20, preset="veryfast")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "frames": info.frames, "peak_kib": peak, "start_kib": before}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segments", type=int, default=10, help="segments of the long join")
    parser.add_argument("--frames", type=int, default=33, help="frames per segment (4k+1)")
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)


def make_segments(folder: Path, count: int, frames: int, width: int, height: int) -> list[Path]:
    keys = [pattern_image(width, height, "keyframe", i) for i in range(count + 1)]
    paths = []
    for number in range(count):
        guide = Guide(start=keys[number], end=keys[number + 1])
        base = pattern_image(width, height, "segment", number)
        path = folder / f"segment_{number:03}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=16, options={"preset": "ultrafast"})
            assert isinstance(stream, av.VideoStream)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index in range(frames):
                image = motion.render_frame(base, guide, index, frames, bytes(range(40, 80)))
                frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
                frame.pts = index
                frame.time_base = Fraction(1, 16)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        paths.append(path)
    return paths


def join_in_child(out: Path, segments: list[Path]) -> dict[str, float]:
    command = [sys.executable, "-c", CHILD, str(out), *map(str, segments)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the join failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-join-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        segments = make_segments(folder, args.segments, args.frames, args.width, args.height)
        made = time.perf_counter() - started
        rows = []
        peaks = []
        for count in sorted({2, args.segments}):
            result = join_in_child(folder / f"joined_{count}.mp4", segments[:count])
            frames = int(result["frames"])
            peak_mib = result["peak_kib"] / 1024
            peaks.append(peak_mib)
            all_frames_mib = frames * args.width * args.height * 3 / 2**20
            rows.append(
                [
                    count,
                    frames,
                    result["seconds"],
                    frames / result["seconds"],
                    peak_mib,
                    all_frames_mib,
                ]
            )
        seams = scoring.seam_continuity(segments)
    notes = [
        f"{args.segments} segments of {args.frames} frames at {args.width}x{args.height} "
        f"made in {made:.1f} s; H.264 CRF 20, preset veryfast, 16 fps",
        f"peak memory ratio, {args.segments} vs 2 segments: {peaks[-1] / peaks[0]:.2f} "
        "(1.0 = it does not grow with the video's length)",
        f"seam continuity of these segments: {seams.value} "
        f"(largest seam ratio {max(s['ratio'] for s in seams.details['seams']):.2f})",
    ]
    report(
        "join_segments",
        [
            "segments",
            "frames out",
            "seconds",
            "frames/s",
            "peak RSS MiB",
            "all frames held MiB",
        ],
        rows,
        notes,
    )
