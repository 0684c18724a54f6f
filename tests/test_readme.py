"""The README's examples as a user copies them: every ```python block runs on its own in a fresh interpreter (and
prints what the sentence after it says it prints), and every `fastnn ...` command line it shows parses with the CLI's
own parser, so an option renamed in the code but not in the README fails here."""
import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8") if README.exists() else ""     # (an installed package's tests: no README)
pytestmark = pytest.mark.skipif(not TEXT, reason="README.md not found (tests run outside the source tree)")


def fenced_blocks(text=TEXT):
    """(language, line number of the opening fence, body) of every fenced block, in order."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            blocks.append((lines[i][3:].strip(), i + 1, "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return blocks


def printed_claims(lineno, text=TEXT):
    """What the README says the block opening at `lineno` prints: the code spans of the paragraph right after the
    block when that paragraph starts with "prints" (e.g. "prints ... `training loss 0.025`."), else []."""
    lines = text.split("\n")
    end = next(k for k in range(lineno, len(lines)) if lines[k].startswith("```"))
    para = []
    for line in lines[end + 1:]:
        if not line.strip() and para:
            break
        if line.strip():
            para.append(line)
    para = " ".join(para)
    return re.findall(r"`([^`]+)`", para) if para.startswith("prints") else []


PYTHON = [(lineno, body) for lang, lineno, body in fenced_blocks() if lang == "python"]


def test_the_readme_has_its_examples():
    # (else the tests below would pass on a README whose blocks the extraction no longer finds)
    assert len(PYTHON) >= 5
    assert printed_claims(PYTHON[0][0])


@pytest.mark.parametrize("lineno, code", PYTHON, ids=[f"line{n}" for n, _ in PYTHON])
def test_python_block_runs_as_pasted(lineno, code, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    if run.returncode != 0:
        pytest.fail(f"README.md line {lineno}: exit {run.returncode}\n{run.stderr[-3000:]}", pytrace=False)
    missing = [claim for claim in printed_claims(lineno) if claim not in run.stdout]
    if missing:
        pytest.fail(f"README.md line {lineno}: the text after the block says it prints {missing}; it printed:\n"
                    f"{run.stdout}", pytrace=False)


# ---- command lines ------------------------------------------------------------------------------------------------

SHELL = {"", "bash", "sh", "console", "shell"}      # the languages of fenced blocks that hold command lines
SEPARATORS = {"|", "||", "&", "&&", ";"}            # between two commands of one line
REDIRECTS = {">", ">>", "<", "2>", "&>"}             # each followed by its file

# README text in a command line that is neither part of a command nor the usage notation _commands_of reads, and
# what stands there instead, each with why.  A line with another such placeholder fails: add it here, with its reason.
PLACEHOLDERS = {
    # `lm train`'s synopsis: "and its other options"
    "[options]": "",
    # the search synopsis's continuation line: the rest of its options are those of the training command
    "[the options of `fastnn tagger train` / `fastnn lm train`]": "",
    # prose for both commands
    "tagger eval/predict": "tagger {eval,predict}",
}


def _parser():
    """The CLI's own parser, refusing abbreviations (else `--epoch` still parses after `--epoch` became
    `--epochs-max`, and the README would go on showing it)."""
    parser = build_parser()
    for p in _all_parsers(parser):
        p.allow_abbrev = False
    return parser


def _subparsers(parser):
    import argparse
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _all_parsers(parser):
    yield parser
    sub = _subparsers(parser)
    for p in (sub.choices.values() if sub else ()):
        yield from _all_parsers(p)


def _command_path(parser, words):
    """(the parser of the longest run of command words that starts `words`, the rest of the words)."""
    p, rest = parser, list(words)
    while rest and _subparsers(p) is not None and rest[0] in _subparsers(p).choices:
        p = _subparsers(p).choices[rest.pop(0)]
    return p, rest


def _inline_spans(text):
    """(line number, text) of the inline code spans outside fenced blocks, whitespace runs made one space."""
    kept, inside = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            inside = not inside
            line = ""
        kept.append("" if inside else line)
    prose = "\n".join(kept)
    return [(prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()))
            for m in re.finditer(r"`([^`]+)`", prose)]


def _block_lines(lineno, body):
    """(line number, text) of a shell block's logical lines: a `$ ` prompt dropped; a line ending in a backslash, or
    followed by an indented one, continues on the next."""
    out = []
    for k, line in enumerate(body.split("\n")):
        if out and (out[-1][1].endswith("\\") or (line[:1].isspace() and line.strip())):
            out[-1] = (out[-1][0], out[-1][1].rstrip("\\") + " " + line.strip())
        elif line.strip():
            out.append((lineno + 1 + k, re.sub(r"^\$ ", "", line)))
    return out


def readme_commands(text=TEXT):
    """(where, text, inline) of every fastnn command the README shows: the commands of its shell blocks' lines (a line
    may hold several: `echo ... | fastnn ...; echo $?`), and the inline code spans that start with `fastnn ` or with a
    command's words (`tagger train --lstm-hidden 50`, `lm eval`: the words of a command of the parser)."""
    out = []
    for lang, lineno, body in fenced_blocks(text):
        if lang in SHELL:
            out += [(f"README.md:{n}", line, False) for n, line in _block_lines(lineno, body)
                    if re.search(r"(^|[|;&]\s*)fastnn\s", line)]
    parser = build_parser()
    for n, span in _inline_spans(text):
        words = span.split()
        if words[0] == "fastnn" and len(words) > 1:
            out.append((f"README.md:{n}", span, True))
        elif _command_path(parser, words)[0] is not parser:
            out.append((f"README.md:{n}", "fastnn " + span, True))
    return out


def _commands_of(line):
    """The argv lists (without "fastnn") of the fastnn commands in one shell line, in the usage notation of the
    README (argparse's own): [optional] parts are given, each {a,b} alternative is tried, a|b takes a, an
    upper-case METAVAR stands for "1" (a number, a name, a file), "..." (more options) is dropped.  A brace inside
    a word (brown.{train,test}.txt) is the shell's, expanded to several words."""
    for placeholder, instead in PLACEHOLDERS.items():
        line = line.replace(placeholder, instead)
    line = re.sub(r"(?<=[^\s|])\|[^\s|\]]+", "", line)            # a|b -> a (a pipe has spaces around it)
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands, words, skip = [], [], False
    for tok in list(lex) + [";"]:
        if skip:
            skip = False
        elif tok in REDIRECTS:
            skip = True
        elif tok in SEPARATORS:
            if words[:1] == ["fastnn"]:
                commands.append(words[1:])
            words = []
        else:
            words.append(tok)
    out = []
    for argv in commands:
        choices = []
        for tok in argv:
            tok = tok.strip("[]")
            if tok in ("", "...", "…"):
                continue
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", tok):
                tok = "1"
            m = re.fullmatch(r"\{([^{}]*)\}", tok)
            if m:                                                      # one of the alternatives
                choices.append([[alt] for alt in m.group(1).split(",")])
                continue
            m = re.fullmatch(r"(.*)\{([^{}]*)\}(.*)", tok)
            choices.append([[m.group(1) + alt + m.group(3) for alt in m.group(2).split(",")]] if m else [[tok]])
        out += [[w for part in combo for w in part] for combo in itertools.product(*choices)]
    return out


def check_parses(argv, complete):
    """Parse `fastnn *argv` with the CLI's own parser (no abbreviations); raise a CLIError naming the problem unless
    it parses.  Command words alone (`fastnn lm`, `fastnn tagger train`) name a command: it must exist.  `complete`
    False, a command shown in part (inline, or with "..."): its required arguments may be missing, a last option
    without its value names that option, and a group's words with options (`fastnn search --scheduler`) name an
    option that each of the group's commands must have."""
    from fastnn.cli._common import CLIError
    parser = _parser()
    p, rest = _command_path(parser, argv)
    if not rest and p is not parser:
        return                                          # command words only: the command exists
    if not complete:
        for q in _all_parsers(parser):
            for a in q._actions:
                a.required = a.required and a is _subparsers(q)
        if rest and rest[-1] in p._option_string_actions and p._option_string_actions[rest[-1]].nargs != 0:
            argv = argv[:-1]                           # `--pretrained`: the option named (it exists), no value
        if _subparsers(p) is not None and rest[0].startswith("-") and p is not parser:
            words = argv[:len(argv) - len(rest)]
            for name in _subparsers(p).choices:
                check_parses([*words, name, *rest], complete)
            return
    if _subparsers(p) is not None and rest and not rest[0].startswith("-"):
        raise CLIError(f"{rest[0]!r} is not a command of {p.prog} ({', '.join(_subparsers(p).choices)})")
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as e:                             # --version, -h: print and exit 0
        if e.code:
            raise
        return
    if extra:
        raise CLIError(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "train_args", None) is not None:  # a search: the rest are options of the training command
        check_parses([args.search_command, "train", *args.train_args], complete=False)


COMMANDS = readme_commands()


def test_the_readme_has_its_commands():
    # (else the test below would pass on a README whose commands the extraction no longer finds)
    assert len(COMMANDS) >= 60 and sum(inline for *_, inline in COMMANDS) >= 30
    assert all(_commands_of(text) for _, text, _ in COMMANDS)      # each line holds a fastnn command


@pytest.mark.parametrize("where, text, inline", COMMANDS, ids=[f"{w}:{t[:60]}" for w, t, _ in COMMANDS])
def test_command_line_parses(where, text, inline, capsys):
    from fastnn.cli._common import CLIError
    for argv in _commands_of(text):
        try:
            check_parses(argv, complete=not inline and "..." not in text)
        except CLIError as e:
            pytest.fail(f"{where}: `fastnn {shlex.join(argv)}` does not parse: {e}", pytrace=False)


# Options the README names that are no fastnn command's nor a bench script's, each with whose it is.
OTHER_OPTIONS = {
    "--benchmark-json", "--benchmark-only",        # pytest-benchmark
    "--nthreads", "--nworkers",                    # `dask worker`
    "--inplace", "--force",                        # `python setup.py build_ext`
    "--tra",                                       # the abbreviation the CLI refuses for a list option given twice
    "--no-",                                       # the prefix of a switch turned off (`--no-NAME`)
}


def test_every_option_named_exists():
    """An option named anywhere in the README (in prose too: `--lstm-dropout P`) is one of a fastnn command's, or of
    a script under bench/ (its source names it), or in OTHER_OPTIONS; so a renamed option is not left behind."""
    known = {o for p in _all_parsers(_parser()) for o in p._option_string_actions}
    bench = "\n".join(f.read_text(encoding="utf-8") for f in sorted((ROOT / "bench").glob("*.py")))
    unknown = {}
    for n, line in enumerate(TEXT.split("\n"), 1):
        for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
            if opt not in known and f'"{opt}"' not in bench and opt not in OTHER_OPTIONS:
                unknown.setdefault(opt, n)
    assert not unknown, "options the README names that nothing has (README.md line): " + ", ".join(
        f"{o} ({n})" for o, n in unknown.items())
