"""Every file of benchmarks/results/ that the docs cite exists: the paths under benchmarks/results/ in docs/,
README.md and the results' summaries, and the files a summary names relative to its own folder (a study's raw
files live in the folder named after its summary, benchmarks/results/README.md)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
SUMMARIES = sorted(RESULTS.glob("*.md"))
# `benchmarks/results/...` anywhere, or a dated results name relative to the summary's folder (in backticks or a
# Markdown link): ``ablation_2026-12-06/ablation_2026-12-06.json``, ``sharing_2026-12-06/``.
ANCHORED = re.compile(r"benchmarks/results/[\w./-]*")
RELATIVE = re.compile(r"(?:`|\]\()([\w-]*\d{4}-\d{2}-\d{2}[\w./-]*)(?:`|\)|#)")
WILDCARDS = set("*?{}<>")


def cited(path: Path) -> list[tuple[str, Path]]:
    """(as cited, the file it names) for every results path ``path`` cites."""
    text = path.read_text(encoding="utf-8")
    found = [(m, ROOT / m.rstrip(".")) for m in ANCHORED.findall(text)]
    if path.parent == RESULTS:
        found += [(m, path.parent / m.rstrip(".")) for m in RELATIVE.findall(text)]
    return [(m, target) for m, target in found if not WILDCARDS & set(m)]


@pytest.mark.parametrize("path", DOCS + SUMMARIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_results_path_exists(path):
    missing = sorted({m for m, target in cited(path) if not target.exists()})
    assert not missing, f"{path.relative_to(ROOT)} cites missing results files: {missing}"


def test_the_links_are_found():
    """Not vacuous: the index and the docs cite results files, raw files in a study's folder among them."""
    everything = [m for path in DOCS + SUMMARIES for m, _ in cited(path)]
    assert len(everything) > 50
    assert any(re.fullmatch(r"ablation_2026-12-06/ablation_2026-12-06\.json", m) for m in everything)
    assert any(m.startswith("benchmarks/results/synthetic_default_2026-12-06") for m in everything)


def test_no_raw_file_lies_loose_in_the_results_folder():
    """A study's raw files are in its folder; at the top only the summaries, the index and README's figures."""
    loose = [p.name for p in RESULTS.iterdir() if p.is_file() and p.suffix != ".md" and p.name != "demo_tiny_checkpoint.png"]
    assert loose == []
    orphans = [p.name for p in RESULTS.iterdir() if p.is_dir() and not (RESULTS / f"{p.name}.md").exists()]
    assert orphans == []
