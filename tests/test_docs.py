"""The README and docs/ stay true to the code: one page, links that resolve, `keap-orders` commands and options
that exist."""
from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`|```[a-z]*\n(.*?)```", re.S)


def _cli() -> click.Group:
    # The console script pyproject.toml declares, wherever the command's module lives.
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["keap-orders"]
    module, _, name = script.partition(":")
    return getattr(importlib.import_module(module), name)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def _commands_shown(page: Path) -> list[str]:
    """Every `keap-orders ...` in code, and the first column of the README's operator table (commands without the
    program name), cut at a comment, a pipe or a sentence's end."""
    text = page.read_text(encoding="utf-8")
    shown = []
    for span, block in CODE.findall(text):
        for line in (block or span).splitlines():
            # (not `kubectl -n keap-orders ...` or `create namespace keap-orders`: the name of a namespace)
            for found in re.findall(r"(?<!-n )(?<!namespace )keap-orders ((?:auth )?[a-z]+[^#|;`()]*)", line):
                shown.append(found)
    if page == README:
        assert "\n## Operator commands\n" in text, "README: the operator commands section is gone"
        table = text.split("\n## Operator commands\n", 1)[1].split("\n## ", 1)[0]
        for row in re.findall(r"^\| (.+?) \|", table, re.M)[2:]:
            shown += re.findall(r"`([^`]+)`", row)
    return shown


def test_readme_is_one_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert anchor in _anchors(linked), f"{page.name}: link to {target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_and_options_exist(page):
    cli = _cli()
    for shown in _commands_shown(page):
        words = shown.split()
        command = cli.commands.get(words[0])
        assert command is not None, f"{page.name}: `keap-orders {shown}`: no such command"
        if isinstance(command, click.Group):
            command = command.commands.get(words[1]) if len(words) > 1 else None
            assert command is not None, f"{page.name}: `keap-orders {shown}`: no such subcommand"
        options = {name for param in command.params for name in param.opts + param.secondary_opts}
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", shown):
            assert option in options | {"--help"}, f"{page.name}: `keap-orders {shown}`: no option {option}"


def test_the_commands_are_found():
    """The test above reads what the pages show (it would pass on nothing)."""
    shown = [words.split()[0] for page in PAGES for words in _commands_shown(page)]
    assert {"backfill", "status", "failed", "retry", "sandbox", "auth", "doctor", "verify"} <= set(shown)
