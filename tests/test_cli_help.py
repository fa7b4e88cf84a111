"""Every `sitekeeper` command says what it does (`--help` text) and is named in the README or docs/, so that an
owner or installer who reads either finds every command, and none is left undocumented."""

from __future__ import annotations

import argparse
import re

from conftest import ROOT

from edge.cli.main import _parser


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(words, help text) of every leaf command."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                words = (*prefix, name)
                leaves = commands(sub, words)
                out += leaves or [(words, helps.get(name) or "")]
    return out


def test_every_command_has_help_and_is_documented():
    docs = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    found = commands(_parser())
    assert len(found) >= 20
    for words, text in found:
        assert text.strip(), f"sitekeeper {' '.join(words)} has no help text"
        pattern = r"sitekeeper\s+(?:\[?--config\s+\S+\]?\s+)?" + r"\s+".join(map(re.escape, words)) + r"\b"
        assert re.search(pattern, docs), f"sitekeeper {' '.join(words)} is not named in README.md or docs/"


def test_setup_gives_a_pi_the_hardware_tests_without_the_ci_machines_parts():
    """hardware_tests/README.md asked for pytest, which ./setup.sh did not install on a Pi."""
    import subprocess
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    usage = subprocess.run(["bash", str(root / "setup.sh"), "--help"], capture_output=True, text=True).stdout
    assert "--hardware-tests" in usage
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = extras["hardware-tests"]
    assert wanted and all(d.startswith("pytest") for d in wanted), "pytest, nothing of the CI machine's"
    assert "./setup.sh --hardware-tests" in (root / "hardware_tests" / "README.md").read_text()
