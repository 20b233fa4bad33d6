"""The study's report: report.md's sections and figure links, and report.html self-contained and rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

SECTIONS = [
    "Autoencoder and hyperparameter search",
    "Latent space",
    "Fine-tuning a classifier on the frozen encoder",
    "Denoising autoencoder",
    "Variational autoencoder",
    "GAN",
    "Sample quality",
]


def test_markdown_follows_the_report_and_links_every_figure(study_report):
    report = study_report["dir"]
    md = (report / "report.md").read_text()
    heads = re.findall(r"^## (.+)$", md, flags=re.M)
    assert heads == ["Steps", "Families", *SECTIONS]
    # The families table has one row a trained model; the AE step is measured for reconstruction.
    families = md[md.index("## Families") : md.index("## Autoencoder")]
    steps = [
        line.split("|")[3].strip() for line in families.splitlines() if line.startswith("| mnist")
    ]
    assert steps == ["train_ae", "denoise", "train_vae", "gan"]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 20
    # Each figure once in the step sections (the Families table shows one of each model again).
    steps = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md[md.index("## Autoencoder") :])
    assert len(steps) == len(set(steps)), [f for f in steps if steps.count(f) > 1]
    assert all((report / link).is_file() for link in links), [
        ln for ln in links if not (report / ln).is_file()
    ]
    assert any(ln.endswith("progress.gif") for ln in links) and any(
        ln.endswith("vae_grid.png") for ln in links
    )
    # The original report's numbers stand beside ours, and the setting table names data, device and versions.
    assert (
        "| best latent_dim |" in md
        and "| 7 |" in md
        and "| test accuracy |" in md
        and "0.963" in md
    )
    assert "| dataset | mnist-sample:" in md and "| device | cpu |" in md and "| torch |" in md
    assert "13 of 13 steps done" in md


def test_html_embeds_every_figure_and_refers_to_nothing_outside(study_report):
    report = study_report["dir"]
    page = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(re.findall(r"!\[", md))
    assert all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in srcs)
    assert not re.search(
        r'(src|href)="(?!data:)', page
    )  # no file, no URL: the page works when copied alone and offline


def _chromium() -> str | None:
    return next(
        (
            shutil.which(c)
            for c in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(c)
        ),
        None,
    )


# Appended to a copy of the page: after load, write how many images decoded into the DOM that --dump-dom prints.
PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
  document.body.setAttribute('data-probe', ok.length + '/' + imgs.length);
});</script>"""


@pytest.mark.browser
def test_html_renders_all_images_in_headless_chromium(study_report, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("UDL_REQUIRE_BROWSER"):
            pytest.fail(
                "UDL_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)"
            )
        pytest.skip("no chromium: apt-get install chromium (CI installs it)")
    page = tmp_path / "report.html"  # a copy alone in an empty folder: nothing beside it to load
    page.write_text(
        (study_report["dir"] / "report.html").read_text().replace("</body>", PROBE + "</body>")
    )
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--user-data-dir=" + str(tmp_path / "profile"),
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-probe="(\d+)/(\d+)"', dom)
    assert m, dom[-2000:]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 20 and loaded == total
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*cmd[:-2], f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000  # a page with pictures, not a blank one
