"""Build meshcore's compiled kernels.

Every ``ext/NAME.pyx`` becomes the private extension ``meshcore.kernels._NAME_c``.

Environment switches (read at build time):

* ``MESHCORE_NO_EXTENSIONS=1`` builds a pure-Python install on purpose.
* ``MESHCORE_REQUIRE_EXTENSIONS=1`` makes a failed compile fail the build
  (CI and wheel builds set it); otherwise a failure falls back to the pure
  twins with a message, so routers without a compiler still install.
* ``MESHCORE_CYTHON_DEBUG=1`` turns Cython's bounds and wraparound checks on.
* ``MESHCORE_CYTHON_COVERAGE=1`` compiles with line tracing for coverage runs.
* ``MESHCORE_KERNELS=bloom,drr`` builds only those kernels (for development).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
EXT_DIR = "ext"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


NO_EXTENSIONS = _flag("MESHCORE_NO_EXTENSIONS") or platform.python_implementation() != "CPython"
REQUIRE_EXTENSIONS = _flag("MESHCORE_REQUIRE_EXTENSIONS")
DEBUG = _flag("MESHCORE_CYTHON_DEBUG")
COVERAGE = _flag("MESHCORE_CYTHON_COVERAGE")
ONLY = {k.strip() for k in os.environ.get("MESHCORE_KERNELS", "").split(",") if k.strip()}


class OptionalBuildExt(build_ext):
    """Compile the kernels, or fall back to the pure twins unless required."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing entirely
            self._fallback(exc)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # one kernel failed to compile
            self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        if REQUIRE_EXTENSIONS:
            raise
        print(
            f"meshcore: compiling the kernels failed ({exc}); "
            "installing the pure-Python twins instead",
            file=sys.stderr,
        )


def _extensions():
    if NO_EXTENSIONS:
        print("meshcore: MESHCORE_NO_EXTENSIONS set or not CPython: pure-Python build",
              file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        print("meshcore: Cython is not available: pure-Python build", file=sys.stderr)
        return []
    from setuptools import Extension

    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if COVERAGE:
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    # No fused multiply-add contraction: the cache kernel's float priorities
    # must round exactly as its pure twin's (gcc contracts by default on ARM).
    extra_compile_args = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]
    modules = [
        Extension(
            f"meshcore.kernels._{pyx.stem}_c",
            [f"{EXT_DIR}/{pyx.name}"],
            include_dirs=[EXT_DIR],
            define_macros=macros,
            extra_compile_args=extra_compile_args,
        )
        for pyx in sorted((HERE / EXT_DIR).glob("*.pyx"))
        if not ONLY or pyx.stem in ONLY
    ]
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "cdivision": not DEBUG,
        "embedsignature": True,
    }
    if COVERAGE:
        directives["linetrace"] = True
    try:
        return cythonize(
            modules,
            compiler_directives=directives,
            include_path=[EXT_DIR],
            annotate=_flag("MESHCORE_CYTHON_ANNOTATE"),
            # Directives change the generated C: regenerate when tracing or
            # checks are switched, or a stale .c would silently win.
            force=COVERAGE or DEBUG,
            quiet=True,
        )
    except Exception as exc:  # a .pyx that Cython rejects
        if REQUIRE_EXTENSIONS:
            raise
        print(f"meshcore: cythonize failed ({exc}): pure-Python build", file=sys.stderr)
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
