"""README.md stays a landing page whose links all lead somewhere.

The manual in docs/ is checked by ``mkdocs build --strict`` (``./dev docs``, and first thing
in ``./dev test``); README.md is outside the site, so its links are checked here.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (mkdocs, GitHub alike) gives a heading."""
    text = re.sub(r"[`*_]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def _relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.unit
def test_readme_fits_a_landing_page_budget_of_twelve_kilobytes():
    size = len(README.read_bytes())
    assert size <= 12 * 1024, f"README.md is {size} bytes; move detail into docs/ pages"


@pytest.mark.unit
def test_every_relative_link_in_the_readme_names_an_existing_file_and_heading():
    broken = []
    for target in _relative_links(README):
        path, _, anchor = target.partition("#")
        file = (ROOT / path) if path else README
        if not file.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path or 'README.md'}")
    assert not broken, broken


@pytest.mark.unit
def test_the_readme_links_every_guide_page_of_the_manual():
    linked = {Path(t.partition("#")[0]).name for t in _relative_links(README)}
    guides = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert guides - linked == set(), f"pages missing from README's feature table: {guides - linked}"


@pytest.mark.unit
def test_the_slug_rule_matches_the_manuals_anchors():
    assert _slug("Train without waiting: `trainer.submit`") == "train-without-waiting-trainersubmit"
    assert _slug("Where a run's checkpoints live (Ray Train storage)") == (
        "where-a-runs-checkpoints-live-ray-train-storage"
    )
