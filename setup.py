"""Build fastnn's Cython kernels (csrc/*.pyx -> fastnn._ext.*) with OpenMP when the compiler has it.

Environment switches (read at build time):
  FASTNN_NO_OPENMP=1       skip the OpenMP probe and build serial kernels
  FASTNN_REQUIRE_OPENMP=1  fail the build when OpenMP does not work
  FASTNN_PORTABLE=1        do not add -march=native (for wheels that run on other CPUs)
  FASTNN_DEBUG_KERNELS=1   compile with boundscheck=True and -O1 -g (slow; for debugging)
  FASTNN_SANITIZE=address  build with AddressSanitizer (see tests/sanitize.sh)
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# pyproject.toml's `license = "BSD-3-Clause"` (PEP 639) is a schema error before this, with a message that does not
# say so; a build with isolation installs it from [build-system], this catches --no-build-isolation and setup.py runs.
SETUPTOOLS_MIN = (77, 0, 3)

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("%d\\n", n);
        return n == 2 ? 0 : 1;
    }
    """
)

# fnn_amx.h's tile code needs an assembler that knows the AMX instructions (binutils >= 2.36) beside gcc >= 11 or
# clang >= 12; where this does not compile, the build leaves it out (FNN_NO_AMX) rather than failing.
AMX_TEST = textwrap.dedent(
    """
    #include "fnn_amx.h"
    int main(void) {
        void *code[] = {(void *) fnn_amx_pack_rows, (void *) fnn_amx_pack_pairs, (void *) fnn_amx_pack_cols,
                        (void *) fnn_amx_mm};
        return code[0] != 0 && fnn_amx_ok() >= 0 ? 0 : 1;
    }
    """
)


def _env(name):
    return os.environ.get(name, "") not in ("", "0")


def _try_compile_and_run(compiler, source, cflags, lflags):
    """Compile, link and run `source`; True if it ran and exited 0."""
    tmp = tempfile.mkdtemp(prefix="fastnn-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
        exe = os.path.join(tmp, "probe")
        compiler.link_executable(objs, exe, extra_postargs=lflags)
        subprocess.run([exe], check=True, capture_output=True, timeout=60)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compiler_version(compiler):
    """The compiler's name and version as it reports them (first line of `CC --version`), else its type."""
    if compiler.compiler_type == "msvc":
        return f"msvc {getattr(compiler, 'plat_name', '')}".strip()
    exe = (getattr(compiler, "compiler_so", None) or getattr(compiler, "compiler", None) or ["cc"])[0]
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
        return out.strip().splitlines()[0]
    except Exception:
        return exe


def build_info_macro(info):
    """{fact: str} as a C string literal holding JSON, for -DFNN_BUILD_INFO=...: csrc/_info.pyx returns it, so the
    facts travel inside the compiled module (no generated file to keep in step).  ASCII only, no backslashes or
    control characters, so every compiler and command line passes it through unchanged."""
    clean = {k: re.sub(r"[^ -~]|\\", "?", str(v)) for k, v in info.items()}
    return json.dumps(json.dumps(clean, sort_keys=True))


def probe_openmp(compiler):
    """Return (cflags, lflags) that give working OpenMP, or None."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang rejects -fopenmp; libomp from Homebrew works with -Xpreprocessor (honour CPPFLAGS/LDFLAGS).
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _try_compile_and_run(compiler, OPENMP_TEST, cflags, lflags):
            return cflags, lflags
    return None


class BuildExt(build_ext):
    def finalize_options(self):
        # Cythonize here, when extensions are built, not when setup.py is loaded: an sdist or metadata step then
        # neither spends minutes on it nor leaves generated .c files beside the sources.
        self.distribution.ext_modules = extensions(SOURCES)
        super().finalize_options()

    def build_extensions(self):
        cc = self.compiler
        cflags, lflags = [], []
        native = amx = False
        if cc.compiler_type == "msvc":
            cflags += ["/O2"]
        else:
            if _env("FASTNN_DEBUG_KERNELS") or os.environ.get("FASTNN_SANITIZE"):
                cflags += ["-O1", "-g", "-fno-omit-frame-pointer"]
            else:
                cflags += ["-O3"]
            # Lets gcc vectorise float reductions and call no errno-setting libm; NaN/Inf semantics are kept.
            cflags += ["-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
            if not _env("FASTNN_PORTABLE") and _try_compile_and_run(cc, "int main(void){return 0;}\n",
                                                                       ["-march=native"], []):
                cflags += ["-march=native"]
                native = True
                # gcc keeps to 256-bit vectors on AVX-512 CPUs unless told otherwise; the kernels' long exp and update
                # loops run ~20 % faster with 512-bit ones (softmax_xent, 1 thread).  x86 compilers only: probed.
                if _try_compile_and_run(cc, "int main(void){return 0;}\n",
                                        ["-march=native", "-mprefer-vector-width=512"], []):
                    cflags += ["-mprefer-vector-width=512"]
            amx = _try_compile_and_run(cc, AMX_TEST, cflags + [f"-I{os.path.join(HERE, 'csrc')}"], [])
            if not amx:
                print("fastnn: the compiler or assembler cannot build the AMX tile code; leaving it out")
                cflags += ["-DFNN_NO_AMX"]
            san = os.environ.get("FASTNN_SANITIZE")
            if san:
                cflags += [f"-fsanitize={san}"]
                lflags += [f"-fsanitize={san}"]
        openmp = None
        if _env("FASTNN_NO_OPENMP"):
            print("fastnn: FASTNN_NO_OPENMP set; building serial kernels")
        else:
            openmp = probe_openmp(cc)
            if openmp is None:
                msg = ("fastnn: the compiler does not support OpenMP; building serial kernels "
                       "(set CC to gcc or install libomp for multi-threaded kernels)")
                if _env("FASTNN_REQUIRE_OPENMP"):
                    raise RuntimeError(msg)
                warnings.warn(msg)
                print(msg)
            else:
                print(f"fastnn: OpenMP enabled with {openmp}")
        import Cython
        info = {
            "target": "native (-march=native)" if native else "portable" + (" (FASTNN_PORTABLE=1)" if
                                                                             _env("FASTNN_PORTABLE") else ""),
            "compiler": compiler_version(cc),
            "cython": Cython.__version__,
            "openmp_flags": f"{' '.join(openmp[0])} (link {' '.join(openmp[1]) or 'no flags'})" if openmp else "none",
            "cflags": " ".join(cflags),
            "amx_tiles": "compiled" if amx else "left out",     # fnn_amx.h (kernels.amx_bf16 says if it can run)
        }
        for ext in self.extensions:
            ext.extra_compile_args = cflags + (openmp[0] if openmp else []) + ext.extra_compile_args
            ext.extra_link_args = lflags + (openmp[1] if openmp else []) + ext.extra_link_args
            if ext.name == "fastnn._ext._info":
                ext.define_macros = [*ext.define_macros, ("FNN_BUILD_INFO", build_info_macro(info))]
        super().build_extensions()


def _check_setuptools():
    found = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:3])
    if found < SETUPTOOLS_MIN:
        want = ".".join(map(str, SETUPTOOLS_MIN))
        sys.exit(f"fastnn: setuptools {setuptools.__version__} is too old to read pyproject.toml (needs >= {want}): "
                 f"run `pip install -U 'setuptools>={want}'`, or build with isolation (plain `pip install .`)")


def kernel_sources():
    """csrc/*.pyx, each one compiled module; exits with the reason when there are none.

    Without this a tree missing csrc/ (a bad sdist, a partial copy) installs a fastnn that fails only on import.
    """
    pyx = sorted(glob.glob(os.path.join(HERE, "csrc", "*.pyx")))
    if not pyx:
        sys.exit(f"fastnn: no kernel sources: {os.path.join(HERE, 'csrc')} has no .pyx files, so the build would "
                 "install fastnn without its compiled kernels (a complete checkout or sdist has csrc/*.pyx)")
    return [os.path.relpath(p, HERE) for p in pyx]


def extensions(sources):
    from Cython.Build import cythonize

    # the kernels' only directives: a `# cython:` header in a .pyx would override these, and did (boundscheck=False
    # in every file, so FASTNN_DEBUG_KERNELS built kernels that checked no index)
    directives = {
        "language_level": 3,
        "boundscheck": _env("FASTNN_DEBUG_KERNELS"),
        "wraparound": False,
        "initializedcheck": False,
        "cdivision": True,
    }
    exts = []
    for pyx in sources:
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(f"fastnn._ext.{name}", [pyx], include_dirs=["csrc"]))
    return cythonize(exts, compiler_directives=directives, include_path=["csrc"])


SOURCES = kernel_sources()
_check_setuptools()
# Plain placeholders (one per module) until BuildExt cythonizes them: they make the wheel platform-specific.
setup(ext_modules=[Extension(f"fastnn._ext.{os.path.splitext(os.path.basename(p))[0]}", [p]) for p in SOURCES],
      cmdclass={"build_ext": BuildExt})
