"""The interactive HTML reports: `--html` on explain, compare and localize-eval, and
`stviz report DIR`, on a tiny random model and synthetic clips. The pages are opened in
a real headless Chromium (skipped, with the reason, where none is installed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import Page, browser, unavailable
from run_cli import run
from tiny_models import tiny_checkpoint

from stviz import api
from stviz.datasets.synth import SynthConfig, generate
from stviz.explain.explanation import Explanation
from stviz.render.colors import colormap_lut
from stviz.render.html import REPORT_FILE, video_page, write_video_page

CROP = [16, 0, 80, 64]  # the centre square of a 96x64 video, as a Kinetics model sees it


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, 0, 3, seed=2, cfg=SynthConfig(frames=12, size=64), workers=1)
    return out


@pytest.fixture(scope="module")
def model(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(data, tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def compared(data: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stviz compare --html` with ground truth: three methods on one clip."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    video = sorted((data / "videos").glob("*.mp4"))[0]
    api.compare(video, ["gradcam", "saliency"], model, out=out, formats="html",
                annotations=data / "annotations.json", device="cpu")
    return out


@pytest.fixture(scope="module")
def localized(data: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loc") / "out"
    api.localize_eval(data, out, methods=("attention", "gradcam"), model=model,
                      faithfulness=False, device="cpu", html=True, html_videos=1)
    return out


def flat_explanation(width: int = 96, height: int = 64, crop: list[int] | None = CROP
                     ) -> Explanation:
    """Constant maps on two sampled frames of a 12-frame video at 12 fps."""
    return Explanation(video="v.mp4", frame_indices=[0, 6], timestamps=[0, 0.5],
                       spatial=np.ones((2, 7, 7)), temporal=[0.5, 0.5], classes=["a"],
                       probabilities=[1], predicted=0, target=0, method="m",
                       video_frames=12, fps=12.0, width=width, height=height, crop=crop)


@pytest.fixture(scope="module")
def cropped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of an explanation whose maps cover CROP of a grey 96x64 video."""
    frames = ((i, np.full((64, 96, 3), 128, np.uint8)) for i in range(12))
    return write_video_page([flat_explanation()], frames,
                            tmp_path_factory.mktemp("crop") / REPORT_FILE)


def page_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="stviz-data">(.*?)'
                                r"</script>", html, re.S).group(1))


def external_references(html: str) -> list[str]:
    """Every src/href/url() that would leave the file: anything but data: and relative."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']|url\(([^)]*)\)""", html)
    return [r for pair in refs for r in pair
            if r and ((re.match(r"^[a-z]+:", r, re.I) and not r.startswith("data:"))
                      or r.startswith("//"))]


# ---------------------------------------------------------------- files

def test_explain_html_writes_a_self_contained_page_and_report_rebuilds_it(
        data: Path, model: Path, tmp_path: Path, capsys) -> None:
    video = sorted((data / "videos").glob("*.mp4"))[1]
    out = tmp_path / "e"
    code, _, err = run(capsys, "explain", video, "--model", model, "--html", "--format", "png",
                       "--annotations", data / "annotations.json", "--out", out,
                       "--device", "cpu", "-q")
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "explanation.json", "explanation.npz", "ground_truth.json",
            "temporal.png"} <= names
    html = (out / REPORT_FILE).read_text()
    assert external_references(html) == []
    assert "data:video/mp4;base64," in html and "Content-Security-Policy" in html
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["boxes"] and truth["segments"]

    code, _, err = run(capsys, "report", out)
    assert code == 2 and "report.html: file exists; pass --overwrite" in err
    (out / REPORT_FILE).unlink()
    code, _, err = run(capsys, "report", out)
    assert code == 0, err
    assert (out / REPORT_FILE).read_text() == html  # the folder alone gives the same page


def test_compare_html_keeps_every_method_and_rebuilds_without_the_model(
        compared: Path, capsys) -> None:
    methods = json.loads((compared / "compare.json").read_text())["methods"]
    assert list(methods) == ["attention", "gradcam", "saliency"]
    for m in methods:
        assert (compared / "methods" / m / "explanation.npz").is_file()
    html = (compared / REPORT_FILE).read_text()
    assert all(f'value="{i}"' in html for i in range(3)) and "Agreement on" in html
    code, _, err = run(capsys, "report", compared, "--overwrite")
    assert code == 0, err
    assert (compared / REPORT_FILE).read_text() == html


def test_localize_html_links_the_best_and_worst_videos(localized: Path, capsys) -> None:
    report = json.loads((localized / "metrics.json").read_text())
    assert len(report["videos"]) == 3
    first = report["videos"][0]
    assert set(first["metrics"]) == {"attention", "gradcam"}
    assert set(first["metrics"]["attention"]) == {"pointing_game", "mass_in_box",
                                                  "temporal_ap", "mass_in_segment"}
    html = (localized / REPORT_FILE).read_text()
    links = re.findall(r'href="(videos/[^"]+)"', html)
    assert len(links) == 2  # one worst and one best
    for link in links:
        page = (localized / link).read_text()
        assert 'href="../report.html"' in page and external_references(page) == []
    code, _, err = run(capsys, "report", localized, "--html-videos", "0", "--overwrite")
    assert code == 0, err
    assert "videos/" not in (localized / REPORT_FILE).read_text().split("<h2>Videos")[1]
    # the fixture is shared: put the linked page back for the browser test
    assert run(capsys, "report", localized, "--html-videos", "1", "--overwrite")[0] == 0


def test_the_page_data_carries_the_crop_in_video_pixels(cropped: Path) -> None:
    html = cropped.read_text()
    assert page_data(html)["methods"][0]["crop"] == CROP
    assert "the model saw the centre crop 16,0&ndash;80,64" in html
    whole = video_page([flat_explanation(crop=None)], b"", (96, 64))
    assert page_data(whole)["methods"][0]["crop"] is None


def test_report_user_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "report", tmp_path / "nothing")
    assert code == 2 and "no such folder" in err
    code, _, err = run(capsys, "report", tmp_path)
    assert code == 2 and "no explanation.json" in err


def test_a_10s_clip_with_three_methods_stays_small(realdata: Path, model: Path,
                                                   tmp_path: Path) -> None:
    """The issue's budget: a 10 s 340x256 clip with three methods under 10 MB."""
    api.compare(realdata / "arm_wrestling.mp4", ["gradcam", "saliency"], model,
                out=tmp_path, formats="html", device="cpu")
    assert (tmp_path / REPORT_FILE).stat().st_size < 10e6


# ---------------------------------------------------------------- in a browser

@pytest.fixture(scope="module")
def chromium():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with browser() as b:
        yield b


def stage_pixels(page: Page) -> np.ndarray:
    png = page.page.locator("#stage").screenshot()
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB).astype(float)


def set_opacity(page: Page, percent: int) -> None:
    page.page.evaluate(f"o = document.getElementById('opacity'); o.value = {percent}; "
                       "o.dispatchEvent(new Event('input'))")


def test_video_page_plays_seeks_switches_and_overlays(chromium, compared: Path) -> None:
    page = Page(chromium, compared / REPORT_FILE)
    page.wait_for_video()
    frame = page.page.locator("#frame")
    total = int(frame.get_attribute("max")) + 1

    page.page.keyboard.press(" ")  # plays
    page.page.wait_for_function("document.getElementById('video').currentTime > 0.2")
    page.page.keyboard.press(" ")
    assert page.page.evaluate("document.getElementById('video').paused")
    assert int(frame.input_value()) > 0
    before = int(frame.input_value())
    # the frame box follows the video's seek, which lands asynchronously: wait for it
    page.page.keyboard.press("ArrowRight")
    page.page.wait_for_function(f"+document.getElementById('frame').value === {before + 1}",
                                timeout=5000)
    page.page.keyboard.press("ArrowLeft")
    page.page.wait_for_function(f"+document.getElementById('frame').value === {before}",
                                timeout=5000)

    box = page.page.locator("#curves").bounding_box()  # the click lands on ~3/4 of the clip
    page.page.mouse.click(box["x"] + 8 + 0.75 * (box["width"] - 16), box["y"] + box["height"] / 2)
    page.page.wait_for_function("+document.getElementById('frame').value === "
                                f"{round(0.75 * (total - 1))}", timeout=5000)

    heat = "Array.from(heat.getContext('2d').getImageData(0, 0, heat.width, heat.height).data" \
           ".slice(0, 40000))"
    before = page.page.evaluate(heat)
    page.page.check("input[name=method][value='1']")
    after = page.page.evaluate(heat)
    assert before != after  # gradcam's map is not attention's
    assert page.page.locator("#methods-table tr.active").inner_text().startswith("gradcam")

    page.page.wait_for_function("!document.getElementById('video').seeking")
    page.page.wait_for_timeout(150)
    shots = {}
    for percent in (0, 100, 45):
        set_opacity(page, percent)
        page.page.wait_for_timeout(50)
        shots[percent] = stage_pixels(page)
    # At full opacity every pixel is a colour of the colormap; at 45% the heatmap is
    # blended over the frame (and differs from both).
    lut = colormap_lut("inferno").reshape(256, 3).astype(float)
    heat_px = shots[100].reshape(-1, 3)[::97]
    nearest = np.abs(heat_px[:, None, :] - lut[None]).sum(-1).min(axis=1)
    assert np.median(nearest) < 12
    blend = 0.55 * shots[0] + 0.45 * shots[100]
    assert np.abs(shots[45] - blend).mean() < 4
    assert np.abs(shots[45] - shots[0]).mean() > 8

    assert page.errors == []
    assert all(u.startswith(("file://", "data:")) for u in page.requests), page.requests
    page.close()


def test_localize_page_sorts_and_links(chromium, localized: Path) -> None:
    page = Page(chromium, localized / REPORT_FILE)
    ids = "Array.from(document.querySelectorAll('#videos tbody tr td.id'), td => td.innerText)"
    column = "Array.from(document.querySelectorAll('#videos tbody tr'), " \
             "tr => tr.cells[5].dataset.value)"  # attention's temporal_ap
    header = page.page.locator("#videos thead tr:nth-child(2) th:nth-child(6)")
    header.click()
    values = [float(v) for v in page.page.evaluate(column) if v]
    assert values == sorted(values)
    header.click()
    assert [float(v) for v in page.page.evaluate(column) if v] == sorted(values, reverse=True)
    assert len(page.page.evaluate(ids)) == 3
    page.page.locator("#videos a").first.click()
    page.page.wait_for_selector("html[data-ready=true]")
    assert page.page.url.startswith(localized.resolve().as_uri() + "/videos/")
    assert page.errors == []
    assert all(u.startswith(("file://", "data:")) for u in page.requests), page.requests
    page.close()


def test_the_heat_layer_covers_only_the_crop(chromium, cropped: Path) -> None:
    page = Page(chromium, cropped)
    page.wait_for_video()
    alpha = page.page.evaluate("Array.from(heat.getContext('2d').getImageData(0, 30, 96, 1)"
                               ".data.filter((_, i) => i % 4 === 3))")
    assert alpha[:16] == [0] * 16 and alpha[80:] == [0] * 16  # the video shows through
    assert alpha[16:80] == [255] * 64
    assert page.page.locator("#crop rect").get_attribute("width") == "64"
    # a video twice the page's size: the crop is scaled and rounded as Explanation.region
    crop = [15, 3, 81, 61]
    scaled = page.page.evaluate(f"data.video.width = 192; data.video.height = 128; "
                                f"region({{crop: {crop}}})")
    big = flat_explanation(192, 128, crop)
    assert scaled == list(big.region((96, 64))) == [8, 2, 41, 31]
    assert page.errors == []
    page.close()
