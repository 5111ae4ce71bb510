"""The front door and the docs site (issue 23): the README fits on a few screens, cites the two papers and shows a
figure of the default run, every link of it leads somewhere, no page points outside the repository, and the site
builds with mkdocs --strict, which fails on a broken link."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")
# The pages a reader of the repository sees: the README, the configs' and the cluster profile's READMEs, the docs.
PAGES = [
    ROOT / "README.md",
    ROOT / "config" / "README.md",
    ROOT / "cluster" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# A Markdown link or image: its target up to the closing parenthesis.
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
# What the site's copy leaves out: the outputs of runs, builds and tools.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "results",
    "logs",
    "benchmarks",
    ".snakemake",
    "site",
    "data",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
    "report.zip",
)


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_the_readme_fits_on_a_few_screens():
    assert len(readme().splitlines()) <= 150


def test_the_readme_cites_both_papers_with_their_links():
    text = " ".join(readme().split())
    for title, link in [
        (
            "No Wrong Turns: The Simple Geometry Of Neural Networks Optimization Paths",
            "https://proceedings.mlr.press/v235/guille-escuret24a.html",
        ),
        (
            "On the Mysterious Optimization Geometry of Deep Neural Networks",
            "https://openreview.net/forum?id=hlwmtSw5KC",
        ),
    ]:
        assert title in text and link in text, title
    assert "ICML 2024" in text and "ICLR 2023" in text


def test_the_readme_shows_a_figure_of_the_default_run_on_its_first_screen():
    images = re.findall(r"!\[[^\]]*\]\((?P<target>[^)\s]+)\)", readme())
    assert len(images) == 1, images
    assert images[0].startswith("docs/img/") and (ROOT / images[0]).is_file(), images
    assert readme().index(images[0]) < readme().index("## The two commands")


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", [page for page in PAGES if page.parent != ROOT / "docs"], ids=name)
def test_every_link_of_a_readme_leads_to_a_file(page):
    """The docs pages' links are mkdocs's to check (below); the READMEs are read on GitHub, outside the site."""
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.relative_to(ROOT)} links to {target}"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_no_page_points_outside_the_repository(page):
    """A clone has no shared folder beside it."""
    text = page.read_text()
    assert "../shared" not in text and "/work/shared" not in text


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_site_builds_with_strict(tmp_path):
    built = build(ROOT, tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()
    assert "pathgeo.measure" in (tmp_path / "site" / "api" / "index.html").read_text()


@pytest.mark.parametrize(
    "link,named",
    [
        ("[a page](no-such-page.md)", "no-such-page.md"),
        ("[an anchor](configuration.md#no-such-section)", "no-such-section"),
        ("[a file](../no_such_file.py)", "no_such_file.py"),
    ],
    ids=["page", "anchor", "repository file"],
)
def test_a_broken_link_fails_the_build(tmp_path, link, named):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text() + f"\nSee {link}.\n")
    built = build(copy, tmp_path / "site")
    assert built.returncode != 0
    assert named in built.stderr, built.stderr[-3000:]
