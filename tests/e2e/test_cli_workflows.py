"""`atelier workflows`, `atelier run` and `atelier download` as a user drives them: the
CLI as a subprocess against `atelier serve --demo` on a real port."""

from __future__ import annotations

from pathlib import Path

import httpx
from PIL import Image

from tests.e2e import test_cli as cli

demo_server = cli.demo_server  # the same fixture: a real `atelier serve --demo`


def test_workflows_list_show_and_what_is_wrong(demo_server: str) -> None:
    listing = cli._cli(demo_server, "workflows", "list")
    assert listing.returncode == 0, listing.stderr
    for name in ("invert", "resize", "txt2img_sd15"):
        assert name in listing.stdout
    shown = cli._cli(demo_server, "workflows", "show", "resize")
    assert shown.returncode == 0, shown.stderr
    assert "image *" in shown.stdout and "0..16384" in shown.stdout and "lanczos" in shown.stdout
    assert "backend demo (up): can run it" in shown.stdout
    unknown = cli._cli(demo_server, "workflows", "show", "nope")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip() == "error: 404 Workflow not found: no workflow 'nope'"
    bad = cli._cli(demo_server, "run", "resize", "-p", "image=x", "-p", "width=wide")
    assert bad.returncode == 1 and bad.stdout == ""
    assert "width" in bad.stderr and "integer" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli._cli(demo_server, "run", "invert", "-p", "image=@/no/such/file.png")
    assert missing.returncode == 2 and "no file" in missing.stderr
    gone = cli._cli(demo_server, "download", "no-such-thing")
    assert gone.returncode == 1 and "404" in gone.stderr


def test_run_with_an_uploaded_file_wait_and_download(demo_server: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (255, 0, 0)).save(photo)
    out = tmp_path / "out"
    ran = cli._cli(
        demo_server,
        "run",
        "resize",
        "-p",
        f"image=@{photo}",
        "-p",
        "width=40",
        "--param",
        "height=30",
        "--wait",
        "--output",
        str(out),
    )
    assert ran.returncode == 0, ran.stderr
    [line] = ran.stdout.splitlines()  # the output paths, one per line, nothing else
    with Image.open(line) as image:
        assert image.size == (40, 30)
    assert Path(line).parent == out
    assert "100.0%" in ran.stderr and "completed" in ran.stderr  # the bar, on stderr

    queued = cli._cli(demo_server, "run", "invert", "--param", f"image=@{photo}")
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    job = httpx.get(f"{demo_server}/api/v1/jobs/{job_id}").json()
    assert job["workflow"] == "invert"
    cli._cli(demo_server, "watch", job_id)  # until it ends

    saved = cli._cli(demo_server, "download", job_id, "-o", str(tmp_path / "dl"))
    assert saved.returncode == 0, saved.stderr
    [path] = saved.stdout.split()
    with Image.open(path) as image:
        assert image.convert("RGB").getpixel((1, 1)) == (0, 255, 255)
    job = httpx.get(f"{demo_server}/api/v1/jobs/{job_id}").json()
    artifact = job["outputs"][0]["id"]
    one = cli._cli(demo_server, "download", artifact, "-o", str(tmp_path / "one"))
    assert one.returncode == 0 and Path(one.stdout.strip()).read_bytes() == Path(path).read_bytes()
