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


def _house_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## The house") : text.index("## Command line")]


@pytest.mark.parametrize("package", ["mrmp", "training", "lab", "service"])
def test_readme_house_names_every_module_of_each_room(package):
    """The README's module tables match the tree: every module and subpackage of a room is
    named in its room's paragraph or table, and every module named there exists."""
    section = _house_section()
    room = section[section.index(f"(`{package}/`)") :]
    room = room[: room.find("\n**", 1) if "\n**" in room[1:] else len(room)]
    folder = ROOT / package
    modules = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
    packages = {f"{p.name}/" for p in folder.iterdir() if (p / "__init__.py").is_file()}
    named = {
        w.strip("`")
        for w in room.split()
        if w.startswith("`") and w.rstrip(",;.):").endswith(("py`", "/`"))
    }
    named = {w.rstrip(",;.):`") for w in named}
    assert modules | packages <= named, sorted((modules | packages) - named)
    anywhere = {p.name for p in folder.rglob("*.py")}  # a subpackage's module may be named too
    stale = {n for n in named if n.endswith(".py")} - anywhere
    assert not stale, sorted(stale)


def test_readme_example_request_is_answered_without_warnings(tmp_path: Path):
    """docs/examples/classify.json, the README's example body, is a clean two-person recording
    in the shipped model's frame: classified, nothing missing, proportions as in training."""
    from tests.service_helpers import ready_client

    body = (ROOT / "docs" / "examples" / "classify.json").read_text()
    assert "@docs/examples/classify.json" in (ROOT / "README.md").read_text()
    store = ROOT / "model_store" / "sbu-mrmp"
    with ready_client(store, tmp_path, onnx_tiers=False) as client:
        r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    (prediction,) = r.json()["predictions"]
    assert prediction["warnings"] == [] and r.json()["rate_served"] == 0.93
