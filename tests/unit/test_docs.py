import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_configuration_page_matches_settings() -> None:
    spec = importlib.util.spec_from_file_location(
        "config_docs", ROOT / "scripts" / "config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "CONFIGURATION.md").read_text() == module.render(), (
        "docs/CONFIGURATION.md is stale: run python scripts/config_docs.py"
    )


def test_readme_starts_with_the_two_commands() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("    ")
    ]
    assert (
        lines[0] == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/atelier serve"
    )
    assert lines[1] == "bash scripts/test"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
