"""The documentation does not lie: the site builds with `mkdocs build --strict` (no broken link, anchor or docstring),
every subcommand and flag of the `cskd ...`, `python scripts/...` and `accelerate launch scripts/...` commands shown
exists in that command's real parser, and every import in a Python snippet imports. The README stays a front door."""

import argparse
import ast
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from transformers import HfArgumentParser

from cskd_hf.cli.cskd_cli import build_parser
from cskd_hf.training import cfa, skd, supervised

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SCRIPTS = {"cfa.py": cfa.ARGUMENTS, "finetune.py": supervised.ARGUMENTS, "skd.py": skd.ARGUMENTS}
FENCE = re.compile(r"^```(\w*)\s*$")


def code_blocks(page: Path) -> list[tuple[str, int, str]]:
    """`(language, first line number, text)` of each fenced code block of a Markdown page."""
    blocks, language, start, lines = [], None, 0, []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line.strip())
        if fence and language is None:
            language, start, lines = fence.group(1) or "text", number + 1, []
        elif line.strip() == "```" and language is not None:
            blocks.append((language, start, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def shell_commands(text: str) -> list[list[str]]:
    """The commands of a shell block, continuation lines joined, comments dropped, `;` and `&&` split, and the
    optional parts shown in brackets (`[--quantize]`) unwrapped."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        command = []
        for token in tokens + [";"]:
            if token in (";", "&&", "|", "||"):
                commands.append(command) if command else None
                command = []
            else:
                command.append(token.strip("[]") if token.startswith("[") or token.endswith("]") else token)
    return [command for command in commands if command]


def unknown_options(parser: argparse.ArgumentParser, tokens: list[str]) -> list[str]:
    """The flags and subcommands of `tokens` that `parser` (and its subcommands' parsers) does not have."""
    subcommands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    for index, token in enumerate(tokens):
        if token.startswith("-") and token != "-":
            if token.split("=", 1)[0] not in parser._option_string_actions:
                return [token]
        elif subcommands is not None:  # the first positional token names the subcommand
            if token not in subcommands.choices:
                return [f"subcommand {token!r}"]
            return unknown_options(subcommands.choices[token], tokens[index + 1 :])
    return []


def command_problems(command: list[str]) -> list[str] | None:
    """What of a shown command its real parser does not know; None when it is none of ours."""
    if command[0] == "cskd":
        return unknown_options(build_parser(), command[1:])
    scripts = [index for index, token in enumerate(command) if token.startswith("scripts/")]
    if command[0] in ("python", "accelerate") and scripts:
        name = Path(command[scripts[0]]).name
        if name not in SCRIPTS:
            return None if (ROOT / "scripts" / name).exists() else [f"no script {name}"]
        return unknown_options(HfArgumentParser(SCRIPTS[name]), command[scripts[0] + 1 :])
    return None


def shown_commands() -> list[tuple[str, list[str]]]:
    shown = []
    for page in PAGES:
        for language, line, text in code_blocks(page):
            if language in ("bash", "sh", "shell", "console", "text"):
                for command in shell_commands(text):
                    shown.append((f"{page.relative_to(ROOT)}:{line}", command))
    return shown


def shown_imports() -> list[tuple[str, str, str | None]]:
    """`(where, module, name)` of every import in the pages' Python snippets (name None for `import module`)."""
    imports = []
    for page in PAGES:
        for language, line, text in code_blocks(page):
            if language != "python":
                continue
            where = f"{page.relative_to(ROOT)}:{line}"
            for node in ast.walk(ast.parse(text, filename=where)):
                if isinstance(node, ast.Import):
                    imports += [(where, alias.name, None) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    imports += [(where, node.module, alias.name) for alias in node.names]
    return imports


def test_every_command_shown_parses_against_its_real_parser():
    checked = [(where, command, command_problems(command)) for where, command in shown_commands()]
    ours = [(where, command, problems) for where, command, problems in checked if problems is not None]
    assert len(ours) >= 30  # the README and the pages show that many: a parser that finds none is broken
    wrong = [f"{where}: {' '.join(command)} -> {problems}" for where, command, problems in ours if problems]
    assert not wrong, "\n".join(wrong)


def test_the_checker_catches_a_made_up_flag_or_subcommand():
    assert command_problems(["cskd", "score", "photos/", "--model", "m", "--made-up-flag"]) == ["--made-up-flag"]
    assert command_problems(["cskd", "scores", "photos/"]) == ["subcommand 'scores'"]
    assert command_problems(["cskd", "data", "shard", "--no-such", "x"]) == ["--no-such"]
    launch = ["accelerate", "launch", "--config_file", "c.yaml", "scripts/skd.py", "--teacher", "t", "--mu", "15"]
    assert command_problems(launch) == []
    assert command_problems([*launch, "--muu", "3"]) == ["--muu"]
    assert command_problems(["ls", "photos/"]) is None


def test_every_import_in_a_python_snippet_imports():
    imports = shown_imports()
    assert len(imports) >= 10
    wrong = []
    for where, module, name in imports:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            wrong.append(f"{where}: import {module}: {error}")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                wrong.append(f"{where}: from {module} import {name}")
    assert not wrong, "\n".join(wrong)


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:40])
    assert "Score my photos" in first_screen and "cskd score" in first_screen


def test_the_site_builds_strictly(tmp_path):
    """`make docs`'s build, with every warning an error (mkdocs-material and mkdocstrings come with `[dev]`)."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists() and (
        tmp_path / "site" / "api" / "models" / "index.html"
    ).exists()
