"""Packaging: the sdist carries what the build needs, setup.py refuses to build no kernels, one version, the licence.

Tests that read the checkout (setup.py, MANIFEST.in) skip when the tests run from a copy beside an installed fastnn
(.ci/run does that); the sdist is checked when FASTNN_SDIST names one (.ci/run builds it).
"""
import fnmatch
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

import fastnn
from tests.conftest import REPO

CHECKOUT = os.path.exists(os.path.join(REPO, "setup.py"))
needs_checkout = pytest.mark.skipif(not CHECKOUT, reason=f"needs the source checkout ({REPO} has no setup.py)")


def _build_inputs():
    """The checkout's files that a build from the sdist reads: kernel sources, headers, the build scripts."""
    csrc = sorted(f"csrc/{f}" for f in os.listdir(os.path.join(REPO, "csrc")) if f.endswith((".pyx", ".pxd", ".h")))
    assert any(f.endswith(".pyx") for f in csrc) and any(f.endswith(".h") for f in csrc)
    return csrc + ["setup.py", "pyproject.toml", "README.md", "LICENSE"]


def _manifest_matcher(text):
    """What MANIFEST.in's include / recursive-include / graft / global-exclude lines select (setuptools' meaning)."""
    inc, exc = [], []
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd == "include":
            inc += [lambda p, pat=a: fnmatch.fnmatch(p, pat) for a in args]
        elif cmd == "recursive-include":
            inc += [lambda p, d=args[0], pat=a: p.startswith(d.rstrip("/") + "/") and fnmatch.fnmatch(os.path.basename(p), pat)
                    for a in args[1:]]
        elif cmd == "graft":
            inc.append(lambda p, d=args[0]: p.startswith(d.rstrip("/") + "/"))
        elif cmd == "global-exclude":
            exc += [lambda p, pat=a: fnmatch.fnmatch(os.path.basename(p), pat) for a in args]
    return lambda p: any(f(p) for f in inc) and not any(f(p) for f in exc)


@needs_checkout
def test_manifest_selects_every_build_input():
    with open(os.path.join(REPO, "MANIFEST.in")) as f:
        selects = _manifest_matcher(f.read())
    missing = [p for p in _build_inputs() if not selects(p)]
    assert not missing, f"MANIFEST.in leaves out {missing}"
    assert selects("tests/conftest.py")
    assert not selects("csrc/_info.c") and not selects("fastnn/_ext/_info.cpython-311-x86_64-linux-gnu.so")


@pytest.fixture
def sdist():
    path = os.environ.get("FASTNN_SDIST")
    if not path:
        pytest.skip("set FASTNN_SDIST to an sdist (python -m build --sdist makes one; .ci/run sets it)")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    return top, {n[len(top) + 1:] for n in names if n.startswith(top + "/")}, pkg_info


def test_sdist_carries_what_the_build_needs(sdist):
    top, members, pkg_info = sdist
    assert top == f"fastnn-{fastnn.__version__}"
    want = _build_inputs() if CHECKOUT else ["csrc/_info.pyx", "csrc/_common.pxd", "csrc/fnn_math.h", "setup.py",
                                              "pyproject.toml", "README.md", "LICENSE"]
    missing = [p for p in want if p not in members]
    assert not missing, f"the sdist lacks {missing}"
    assert "tests/conftest.py" in members and "fastnn/__init__.py" in members
    generated = [p for p in members if p.endswith((".c", ".so", ".pyc"))]
    assert not generated, f"the sdist carries build products {generated}"
    assert f"\nVersion: {fastnn.__version__}\n" in pkg_info
    assert "\nLicense-Expression: BSD-3-Clause\n" in pkg_info


@needs_checkout
def test_setup_refuses_to_build_no_kernels(tmp_path):
    pytest.importorskip("setuptools", reason="running setup.py needs setuptools in this environment")
    shutil.copy(os.path.join(REPO, "setup.py"), tmp_path)
    (tmp_path / "csrc").mkdir()  # there, but without a .pyx
    proc = subprocess.run([sys.executable, "setup.py", "build_ext"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "no kernel sources" in proc.stderr and "has no .pyx files" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def _pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


@needs_checkout
def test_kernel_directives_are_set_by_setup_py_only():
    """A `# cython:` header in a .pyx overrides setup.py's compiler_directives: every kernel file said
    boundscheck=False, so FASTNN_DEBUG_KERNELS=1 built kernels that checked no index."""
    for f in _build_inputs():
        if f.endswith(".pyx"):
            with open(os.path.join(REPO, f)) as fh:
                header = [line for line in fh.read().splitlines()[:5] if line.startswith("# cython:")]
            assert all(line.strip() == "# cython: language_level=3" for line in header), (f, header)
    with open(os.path.join(REPO, "setup.py")) as fh:
        assert '"boundscheck": _env("FASTNN_DEBUG_KERNELS")' in fh.read()


@needs_checkout
def test_version_is_written_once():
    cfg = _pyproject()
    assert "version" not in cfg["project"] and "version" in cfg["project"]["dynamic"]
    assert cfg["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fastnn.__version__"}
    with open(os.path.join(REPO, "fastnn", "__init__.py")) as f:
        assert len(re.findall(r"^__version__ = \"[^\"]+\"$", f.read(), flags=re.M)) == 1
    # setuptools reads the attribute without importing fastnn (the kernels are not built yet then): a literal
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", fastnn.__version__)


@needs_checkout
def test_license_expression_and_file():
    cfg = _pyproject()
    assert cfg["project"]["license"] == "BSD-3-Clause"
    assert not [c for c in cfg["project"].get("classifiers", []) if c.startswith("License ::")]  # PEP 639 forbids both
    requires = " ".join(cfg["build-system"]["requires"])
    assert re.search(r"setuptools>=(7[7-9]|[89]\d)", requires), requires  # 77 first reads the string form
    with open(os.path.join(REPO, "LICENSE")) as f:
        text = f.read()
    assert text.startswith("BSD 3-Clause License") and "Copyright (c) 2026, fastnn developers" in text
    assert "Neither the name of the copyright holder" in text


def test_installed_metadata_matches_the_package():
    """The installed distribution (editable or wheel) was built from this version and carries the licence."""
    dist = importlib.metadata.distribution("fastnn")
    assert dist.version == fastnn.__version__
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    assert any(str(p).endswith("LICENSE") for p in dist.files or []), "no LICENSE in the installed dist-info"


def test_show_config_reports_how_the_kernels_were_built():
    cfg = fastnn.show_config()
    assert cfg["build"].startswith(("native (-march=native)", "portable")), cfg
    assert cfg["compiler"] not in ("", "unknown") and re.fullmatch(r"3\.\d+.*", cfg["cython"]), cfg
    assert (cfg["openmp_flags"] == "none") == (not cfg["openmp"]), cfg
    if os.environ.get("FASTNN_EXPECT_PORTABLE"):  # .ci/run's wheel is built with FASTNN_PORTABLE=1
        assert cfg["build"] == "portable (FASTNN_PORTABLE=1)" and "-march=native" not in fastnn.build_info()["cflags"]


def test_info_command_prints_the_build(capsys):
    from fastnn.cli import main
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("build", "compiler", "cython", "openmp_flags", "openmp"):
        assert re.search(rf"^{key} +\S", out, flags=re.M), out


def test_unbuilt_source_tree_names_the_fix(tmp_path):
    """A checkout without compiled kernels (e.g. after a non-editable install) imported by accident: one sentence."""
    src = os.path.dirname(fastnn.__file__)
    shutil.copytree(src, tmp_path / "fastnn", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "import fastnn"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastnn's compiled kernels are not built in "), proc.stderr
    assert "`pip install -e .`" in last and "`python setup.py build_ext --inplace`" in last and last.count(". ") == 0


def test_stale_source_tree_names_the_fix(tmp_path):
    """An in-place build older than csrc/ (a kernel added since, e.g. after a pull): one sentence naming it."""
    src = os.path.dirname(fastnn.__file__)
    shutil.copytree(src, tmp_path / "fastnn", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "_brand_new.pyx").write_text("")
    proc = subprocess.run([sys.executable, "-c", "import fastnn"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "are older than csrc/ (not built: _brand_new)" in last, proc.stderr
    assert "`python setup.py build_ext --inplace`" in last


def test_tests_run_against_the_installed_package():
    """.ci/run's second venv: the wheel built from the sdist, tests copied out of the checkout."""
    if not os.environ.get("FASTNN_SDIST"):
        pytest.skip("set FASTNN_SDIST (.ci/run runs the suite against the wheel built from it)")
    site = os.path.join("site-packages", "fastnn")
    assert site in fastnn.__file__, f"fastnn imported from {fastnn.__file__}, not the installed wheel"
    assert not CHECKOUT, f"the tests run from {REPO}, a source checkout"
