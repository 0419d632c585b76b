"""Builds wsgate._core (pybind11) against libwsgate through its C ABI only.

By default CMake builds libwsgate from the repository this directory lives in
(the parent of python/), and the library is installed next to the extension
inside the package (rpath $ORIGIN), so the installed package is
self-contained:

    /usr/bin/python3 -m venv --system-site-packages V
    V/bin/pip install --no-build-isolation --no-index ./python

To link an already installed libwsgate instead (no copy; rpath to it):

    WSGATE_LIB_DIR=/usr/local/lib [WSGATE_INCLUDE_DIR=/usr/local/include] pip install ...
    WSGATE_PKG_CONFIG=1 pip install ...        # ask pkg-config for wsgate

Other knobs: WSGATE_CMAKE_BUILD_DIR (where CMake builds; default under
build_temp), WSGATE_BUILD_JOBS (default 2), CMAKE (the cmake binary).

Nothing is written into the source tree: setuptools' build/ and egg-info go
to a fresh temporary directory per run (removed at exit), so a later install
never reuses a stale build (or bundles an old library).
"""

import os
import atexit
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = ROOT / "include" / "wsgate" / "wsgate.h"


# setuptools' scratch space, outside the source tree (see the docstring).
SCRATCH = Path(tempfile.mkdtemp(prefix="wsgate-python-build."))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def header_version(header: Path) -> str:
    text = header.read_text()
    parts = [re.search(rf"#define WSG_VERSION_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError(f"cannot read the version from {header}")
    return ".".join(m.group(1) for m in parts)


def pybind11_include() -> str:
    try:
        import pybind11  # type: ignore

        return pybind11.get_include()
    except ImportError:
        pass
    for candidate in ("/usr/include", "/usr/local/include"):
        if (Path(candidate) / "pybind11" / "pybind11.h").exists():
            return candidate
    raise RuntimeError("pybind11 headers not found: install pybind11-dev (Debian) or pybind11")


def pkg_config(*args: str) -> str:
    return subprocess.check_output(["pkg-config", *args, "wsgate"], text=True).strip()


class BuildExt(build_ext):
    """Builds libwsgate with CMake (or finds an installed one), then the extension."""

    def run(self) -> None:
        lib_dir, inc_dir, bundle = self.locate_libwsgate()
        for ext in self.extensions:
            # Never add a system directory with -I: it breaks libstdc++'s #include_next.
            ext.include_dirs[:0] = [d for d in (inc_dir, pybind11_include())
                                    if d not in ("/usr/include", "/usr/local/include")]
            ext.library_dirs[:0] = [lib_dir]
            ext.extra_link_args += ["-Wl,-rpath,$ORIGIN" if bundle else f"-Wl,-rpath,{lib_dir}"]
        super().run()
        if bundle:
            self.bundle_library(lib_dir)

    def locate_libwsgate(self):
        lib_dir = os.environ.get("WSGATE_LIB_DIR")
        if lib_dir:
            inc = os.environ.get("WSGATE_INCLUDE_DIR") or str(Path(lib_dir).parent / "include")
            return lib_dir, inc, os.environ.get("WSGATE_BUNDLE") == "1"
        if os.environ.get("WSGATE_PKG_CONFIG") == "1":
            return (pkg_config("--variable=libdir"), pkg_config("--variable=includedir"),
                    os.environ.get("WSGATE_BUNDLE") == "1")
        return self.cmake_build(), str(ROOT / "include"), True

    def cmake_build(self) -> str:
        if not (ROOT / "CMakeLists.txt").exists() or not HEADER.exists():
            raise RuntimeError(
                f"{ROOT} is not a wsgate source tree: build from a checkout "
                "or set WSGATE_LIB_DIR / WSGATE_PKG_CONFIG=1 to use an installed libwsgate")
        cmake = os.environ.get("CMAKE", "cmake")
        build_dir = Path(os.environ.get("WSGATE_CMAKE_BUILD_DIR") or
                         Path(self.build_temp).resolve() / "libwsgate")
        build_dir.mkdir(parents=True, exist_ok=True)
        jobs = os.environ.get("WSGATE_BUILD_JOBS", "2")
        self.announce(f"building libwsgate with CMake in {build_dir}", level=2)
        subprocess.check_call([
            cmake, "-S", str(ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DWSGATE_BUILD_TESTS=OFF",
            "-DWSGATE_BUILD_EXAMPLES=OFF",
        ])
        subprocess.check_call([cmake, "--build", str(build_dir), "--target", "wsgate",
                               "--parallel", jobs])
        if not (build_dir / "libwsgate.so.0").exists():
            raise RuntimeError(f"CMake did not produce {build_dir / 'libwsgate.so.0'}")
        return str(build_dir)

    def bundle_library(self, lib_dir: str) -> None:
        """Copies libwsgate.so.0 (the SONAME the extension needs) into the
        package, next to the extension."""
        src = Path(lib_dir) / "libwsgate.so.0"
        if not src.exists():
            raise RuntimeError(f"{src} not found")
        src = src.resolve()
        for ext in self.extensions:
            dest_dir = Path(self.get_ext_fullpath(ext.name)).parent
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest = dest_dir / "libwsgate.so.0"
            self.announce(f"bundling {src} as {dest}", level=2)
            shutil.copyfile(src, dest)
            os.chmod(dest, 0o755)


ext = Extension(
    "wsgate._core",
    sources=["src/module.cpp"],
    libraries=["wsgate"],
    language="c++",
    extra_compile_args=["-std=c++17", "-fvisibility=hidden", "-O2", "-Wall", "-Wextra"],
)

setup(
    version=header_version(HEADER) if HEADER.exists() else os.environ.get("WSGATE_VERSION", "0.0.0"),
    packages=["wsgate"],
    package_data={"wsgate": ["py.typed", "*.pyi"]},
    zip_safe=False,
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
    options={"build": {"build_base": str(SCRATCH / "build")},
             "egg_info": {"egg_base": str(SCRATCH)}},
)
