"""The README quotes the generated results tables verbatim, and the docs the commands that made
them (no number or command typed by hand)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["sbu", "fpha", "ablation_sbu", "ablation_fpha"])
def test_readme_quotes_the_generated_results_table(name):
    table = ROOT / "docs" / "results" / f"{name}.md"
    if not table.is_file():
        pytest.skip(f"no results for {name} yet")
    assert table.read_text().strip() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", ["sbu", "fpha", "ablation_sbu", "ablation_fpha"])
def test_readme_shows_the_command_that_made_each_result(name):
    results = ROOT / "docs" / "results" / f"{name}.json"
    if not results.is_file():
        pytest.skip(f"no results for {name} yet")
    command = json.loads(results.read_text())["command"]
    assert f"`{command}`" in (ROOT / "README.md").read_text()


def test_method_doc_shows_the_command_that_made_the_shipped_model():
    manifest = json.loads((ROOT / "model_store" / "sbu-mrmp" / "manifest.json").read_text())
    command = manifest["training"]["command"]
    assert f"`{command}`" in (ROOT / "docs" / "method.md").read_text()


def test_readme_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("make serve") and block[1].startswith("make test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
