"""report.html opens from disk in headless Chromium with every figure decoded and drawn (skipped where no Chromium
is installed; CI installs Debian's `chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from gendiag.findings import Finding
from gendiag.report.section import ProbeSection
from gendiag.report import render_run

BROWSER_SECONDS = 90
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--virtual-time-budget=5000"]
IMAGE_CHECK = """<script>window.addEventListener("load", () => {
  const sizes = Array.from(document.images, image => [image.complete, image.naturalWidth, image.naturalHeight]);
  const out = document.createElement("pre"); out.id = "image-check"; out.textContent = JSON.stringify(sizes);
  document.body.appendChild(out);
});</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if found is None:
        pytest.skip("no chromium on PATH or at /usr/bin/chromium")
    return found


def run_browser(browser: str, profile: Path, *arguments: str) -> str:
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *arguments], capture_output=True,
                          text=True, timeout=BROWSER_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def red_figure(run_dir: Path, name: str) -> str:
    """A figure whose plot area is pure red, so that the screenshot shows whether it was drawn."""
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.set_facecolor((1.0, 0.0, 0.0))
    axis.set_title(name)
    relative = f"figures/{name}.png"
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    figure.savefig(run_dir / relative, dpi=80)
    plt.close(figure)
    return relative


@pytest.fixture()
def report_html(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    finding_figure, section_figure = red_figure(run_dir, "evidence"), red_figure(run_dir, "section")
    findings = [
        Finding(code="source-not-noise", severity="critical", title="The source batch is not N(0, I) noise",
                message="Mean 0.37, standard deviation 0.48, two distinct values.",
                evidence={"mean": 0.37, "std": 0.48, "distinct_values": 2}, suggestion="Draw torch.randn_like.",
                figure=finding_figure),
        Finding(code="data-binary-pixels", severity="warning", title="Black and white only",
                message="100% of values at 0 or 1.", evidence={"extreme_fraction": 1.0}),
    ]
    sections = [ProbeSection(title="Data representation", text="- **data**: 1.0 distinct samples in 32.",
                             figures=[section_figure])]
    report = render_run(run_dir, findings, sections, header={"case": "browser-check"})
    return report.html_path


def test_report_loads_with_every_image_decoded(report_html: Path, tmp_path: Path) -> None:
    browser = chromium()
    checked = tmp_path / "checked.html"
    checked.write_text(report_html.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK + "</body>"),
                       encoding="utf-8")
    dom = run_browser(browser, tmp_path / "profile-dom", "--dump-dom", checked.as_uri())
    assert "gendiag report: browser-check" in dom and "source-not-noise" in dom and "Data representation" in dom
    match = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert match, "the page's load handler never ran"
    sizes = json.loads(match.group(1))
    assert len(sizes) == 2 == report_html.read_text().count("src='data:image/png;base64,")
    assert all(complete and width > 100 and height > 100 for complete, width, height in sizes), sizes


@pytest.mark.slow
def test_report_screenshot_shows_the_figures(report_html: Path, tmp_path: Path) -> None:
    browser = chromium()
    shot = tmp_path / "shot.png"
    run_browser(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000",
                "--hide-scrollbars", report_html.as_uri())
    pixels = mpimg.imread(shot)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert red.sum() > 2 * 10_000, f"only {int(red.sum())} red pixels: the figures were not drawn"
    assert np.unique(pixels.reshape(-1, 3).round(2), axis=0).shape[0] > 20
