"""The README's generated sections match the code."""

from pathlib import Path

from agent.docs import render_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_reference_and_catalog_are_current():
    text = README.read_text()
    assert render_readme(text) == text, "README is stale: run `python -m agent.docs --write`"


def test_readme_quickstart_has_exactly_two_commands():
    text = README.read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = [b for i, b in enumerate(quick.split("```")) if i % 2 == 1]
    assert len(blocks) == 2
    assert "mlwarden run" in blocks[0] and "make test" in blocks[1]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
