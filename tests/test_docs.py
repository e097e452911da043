"""The README and the pages under docs/ say only what is true of this repository: every
relative link leads to a file (and heading) that exists, every flag a command gives a
program is one that program takes, docs/flags.md lists every flag of every program, the
README stays a front page and shows the Python API, and the text speaks of the software and
not of its history (the code blocks run in tests/test_doc_blocks.py)."""
import contextlib
import functools
import importlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
FLAGS_PAGE = DOCS / "flags.md"

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w])")  # not --nproc of --nproc_per_node
PROGRAM = re.compile(r"scripts/(\w+)\.py")
COMMAND_END = re.compile(r"scripts/\w+\.py|`|\||;|&&")
ARGS = re.compile(r"ARGS=\"([^\"]*)\"")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CHOICES = re.compile(r"(--[a-z][a-z0-9-]*) \{([^}]*)\}")
#: words that tell the story of how the software or its numbers were made, which a reader cannot
#: act on: a timing names the CPU or GPU it was measured on as a fact, not the occasion
HISTORY = re.compile(
    r"issue[ -]?[0-9]|(this|that|the previous|the next|a later) session|device time|earlier version|was fixed|lent to"
    r"|\bsince\b|no longer|as it is now|as it was\b|previous(ly)? (code|version|measurement|run)"
    r"|(was|were) (measured|timed) (before|after|with the code)|before the change"
    r"|\b(this|that)(\s+shared|\s+loaded|\s+busy|\s+\d+-core|,)*\s+machine\b|\bno\b[^.;|]{0,40}\byet\b|\bnot yet\b", re.I)
#: programs whose flags page names only their own flags and takes the rest from another program
INHERITS = {"compare_elbo": "svi_train", "ssl_table": "svi_train"}
README_MAX_LINES = 300


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (where brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def broken_links(page: Path) -> list:
    """The relative links of a Markdown page whose file, folder or heading does not exist."""
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no such file or folder)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    return broken


def commands(text: str):
    """(program, flags) for every command of a program in ``text``: the flags after
    ``scripts/NAME.py`` up to the end of its command (line end, closing backtick, pipe, ``;``,
    ``&&`` or the next program), continuation lines joined; ``make run ARGS="..."`` counts as
    a command of svi_train."""
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        for match in PROGRAM.finditer(line):
            rest = COMMAND_END.split(line[match.end():], maxsplit=1)[0]
            yield match.group(1), FLAG.findall(rest)
        for args in ARGS.findall(line):
            yield "svi_train", FLAG.findall(args)


@functools.lru_cache(maxsize=None)
def help_text(program: str) -> str:
    """What ``scripts/<program>.py --help`` prints, one option to a line (a wide terminal): the
    function the script hands to ``run(MODULE, FUNCTION)`` called in this process with ``--help``,
    as the script calls it, without the 2-3 s of a new interpreter's imports per program."""
    source = (ROOT / "scripts" / f"{program}.py").read_text(encoding="utf-8")
    found = re.search(r"\brun\(\"([\w.]+)\", \"(\w+)\"\)", source)
    assert found, f"scripts/{program}.py does not call run(MODULE, FUNCTION)"
    main = getattr(importlib.import_module(found.group(1)), found.group(2))
    out, err = io.StringIO(), io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"  # argparse wraps the help at the terminal's width
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ended:
            main(["--help"])
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    assert ended.value.code in (0, None), f"scripts/{program}.py --help failed:\n{err.getvalue()}"
    return out.getvalue()


def help_flags(program: str) -> frozenset:
    """The flags ``scripts/<program>.py --help`` names."""
    return frozenset(FLAG.findall(help_text(program))) - {"--help"}


def unknown_flags(text: str) -> list:
    """``program --flag`` for every flag a command in ``text`` gives a program that does not take it."""
    unknown = []
    for program, flags in commands(text):
        assert (ROOT / "scripts" / f"{program}.py").is_file(), f"scripts/{program}.py does not exist"
        unknown += [f"scripts/{program}.py {flag}" for flag in flags if flag not in help_flags(program)]
    return unknown


def flags_page_sections() -> dict:
    """program -> the text of its section (``## NAME.py ...``) of docs/flags.md."""
    sections = {}
    for part in re.split(r"^## ", FLAGS_PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading = part.splitlines()[0]
        match = re.match(r"(\w+)\.py\b", heading)
        if match:
            sections[match.group(1)] = part
    return sections


def flag_rows(section: str) -> dict:
    """flag -> the table row of a section that names it in its first column."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return {flag: row for row in rows for flag in FLAG.findall(row.split("|")[1])}


def help_choices(program: str) -> dict:
    """flag -> its choices, for every flag of ``scripts/<program>.py --help`` that has ``choices=``."""
    return {flag: tuple(choices.split(",")) for flag, choices in CHOICES.findall(help_text(program))}


def missing_choices(section: str, choices: dict) -> list:
    """``--flag choice`` for every choice of a flag that the flag's row does not name in backticks."""
    rows = flag_rows(section)
    return [f"{flag} {choice}" for flag, names in choices.items() if flag in rows
            for choice in names if f"`{choice}`" not in rows[flag]]


def table_flags(section: str) -> set:
    """The flags in the first column of a section's tables."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return {flag for row in rows for flag in FLAG.findall(row.split("|")[1])}


def test_the_docs_exist():
    names = {page.name for page in PAGES[1:]}
    assert {"flags.md", "own-data.md", "models.md", "evaluation.md", "performance.md", "reliability.md",
            "architecture.md"} <= names


def test_the_architecture_page_names_every_module():
    """docs/architecture.md's layout names every module of the package and of benchmarks/ (a
    module added without its line there fails), and no module that is gone."""
    layout = re.search(r"^## Package layout\n.*?^```text\n(.*?)^```", (DOCS / "architecture.md").read_text(),
                       re.S | re.M).group(1)
    modules = {p.name for folder in ("pyrovae", "benchmarks") for p in (ROOT / folder).rglob("*.py")
               if p.name != "__init__.py"}
    assert not sorted(m for m in modules if not re.search(rf"(?<![\w.]){re.escape(m)}\b", layout))
    named = set(re.findall(r"(?<![\w./])(\w+\.py)\b", layout)) - {"__init__.py"}
    others = {p.name for folder in ("scripts", "tests") for p in (ROOT / folder).glob("*.py")} | {"setup.py"}
    assert not sorted(named - modules - others), "the layout names modules that do not exist"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_flag_in_a_command_is_one_the_program_takes(page):
    assert unknown_flags(page.read_text(encoding="utf-8")) == []


def test_the_flags_page_lists_every_flag_of_every_program_and_no_other():
    sections = flags_page_sections()
    programs = {path.stem for path in (ROOT / "scripts").glob("*.py") if not path.stem.startswith("_")}
    assert programs <= set(sections), f"no section in docs/flags.md for {sorted(programs - set(sections))}"
    for program, section in sections.items():
        takes = help_flags(program)
        assert table_flags(section) <= takes, f"{program}: {sorted(table_flags(section) - takes)} are not its flags"
        documented = set(FLAG.findall(section))
        if program in INHERITS:
            assert f"{INHERITS[program]}.py" in section
            documented |= help_flags(INHERITS[program])
        assert takes <= documented, f"docs/flags.md does not describe {program}'s {sorted(takes - documented)}"


def test_the_flags_page_names_every_choice_of_a_flag_in_its_row():
    sections = flags_page_sections()
    for program, section in sections.items():
        choices = help_choices(program)
        if program in INHERITS:
            choices = {**help_choices(INHERITS[program]), **choices}
        assert missing_choices(section, choices) == [], f"docs/flags.md, {program}.py"


def test_the_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert 0 <= text.index("make run") < text.index("make test"), "the two commands, make run first"
    # the README never sends a reader to a committed run: its checkpoints are not in git
    assert not re.search(r"scripts/(evaluate|encode|plot_latent)\.py\s+results/|--resume\s+results/", text)


def test_the_readme_shows_the_python_api():
    code = "\n".join(PYTHON_BLOCK.findall(README.read_text(encoding="utf-8")))
    assert "pyrovae.load(" in code and "vae.encode(" in code and "vae.posterior(" in code


def test_the_readme_shows_the_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make run\b", ci, re.M) and re.search(r"^make test\b", ci, re.M)
    for line in re.findall(r"^\.venv/bin/python scripts/.*$", ci, re.M):
        assert line.replace(" --no-progress", "") in text.splitlines(), f"CI runs {line!r}; the README does not show it"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_text_speaks_of_the_software_not_of_its_history(page):
    found = [m.group(0) for m in HISTORY.finditer(page.read_text(encoding="utf-8"))]
    assert found == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The helpers above fail on a bad link, a missing heading and a flag no program takes."""
    (tmp_path / "there.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a-heading) [gone](missing.md) [no anchor](there.md#nowhere) "
                    "![figure](missing.png) [web](https://example.org/x) `[code](not-a-link)`\n")
    assert broken_links(page) == ["missing.md (no such file or folder)",
                                  "there.md#nowhere (no heading #nowhere in there.md)",
                                  "missing.png (no such file or folder)"]
    text = ("python scripts/svi_train.py --epochs 3 \\\n    --no-such-flag\n"
            "`scripts/evaluate.py RUN --num-samples 5` and `--not-checked`; make run ARGS=\"--bogus\"\n")
    assert unknown_flags(text) == ["scripts/svi_train.py --no-such-flag", "scripts/svi_train.py --bogus"]
    assert slug("`--fast`: the compiled step") == "--fast-the-compiled-step"
    assert HISTORY.search("as this session found") and not HISTORY.search("a session of TensorBoard")
    for story in ("measured with the code of that session", "have run on the CPU only since",
                  "the step as it is now", "no longer computes", "took 2.0 s on that shared,\nloaded machine", "on this shared 2-core machine",
                  "has no measurement yet", "was measured before the change"):
        assert HISTORY.search(story), story
    for fact in ("on an AMD EPYC, 1 thread: 2.3 s per epoch", "the previous checkpoint, whole",
                 "that none was written yet", "the same machinery", "one line naming the row"):
        assert not HISTORY.search(fact), fact
    section = "| `--model` | `vae` | `vae` = one; `cvae` = two |\n| `--elbo` | `trace` | `trace` |\n"
    assert missing_choices(section, {"--model": ("vae", "cvae", "hvae"), "--other": ("x",)}) == ["--model hvae"]

