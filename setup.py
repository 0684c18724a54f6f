"""Build fastnn's Cython kernels (csrc/*.pyx -> fastnn._ext.*) with OpenMP when the compiler has it.

Environment switches (read at build time):
  FASTNN_NO_OPENMP=1       skip the OpenMP probe and build serial kernels
  FASTNN_REQUIRE_OPENMP=1  fail the build when OpenMP does not work
  FASTNN_PORTABLE=1        do not add -march=native (for wheels that run on other CPUs)
  FASTNN_DEBUG_KERNELS=1   compile with boundscheck=True and -O1 -g (slow; for debugging)
  FASTNN_SANITIZE=address  build with AddressSanitizer (see tests/sanitize.sh)
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

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
    def build_extensions(self):
        cc = self.compiler
        cflags, lflags = [], []
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
        for ext in self.extensions:
            ext.extra_compile_args = cflags + (openmp[0] if openmp else []) + ext.extra_compile_args
            ext.extra_link_args = lflags + (openmp[1] if openmp else []) + ext.extra_link_args
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "boundscheck": _env("FASTNN_DEBUG_KERNELS"),
        "wraparound": False,
        "initializedcheck": False,
        "cdivision": True,
    }
    exts = []
    for pyx in sorted(glob.glob(os.path.join("csrc", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(f"fastnn._ext.{name}", [pyx], include_dirs=["csrc"]))
    return cythonize(exts, compiler_directives=directives, include_path=["csrc"])


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
