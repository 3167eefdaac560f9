"""Build of Dideban's compiled modules (everything else is in pyproject.toml).

`dideban.pipeline._native` is Cython: the pipeline's hot path (a JSON decoder that keeps only
the fields the analysis reads, and the extraction of observations from them). Its string scans
classify 16 bytes at once in `_scan.h` (SSE2 on x86-64; elsewhere, or built with
`CFLAGS=-DDIDEBAN_NO_SIMD`, the same answer from two 8-byte words).
The rest of the pipeline's per-measurement path (`analysis`, the verdict logic; `readers`;
`fingerprints`; `observations`) is plain Python, and each source is the one definition of its
code; Cython compiles those same files (each starts with `# cython: annotation_typing=False`:
annotations are not taken as C types, so the compiled code keeps Python's semantics;
`analysis.pxd` declares its per-measurement helpers `cpdef`, with few types: exact dicts,
and the records it reads declared on their C layout in `_records.pxd`/`_layouts.pxd`). That
takes about 40% off the analysis and 5% off the whole path. All are compiled at install time
(`pip install -e .` or `pip install .`), which needs a C compiler and the Python headers;
Cython itself is a build requirement that pip fetches. After editing any of these sources,
rebuild in place with `python setup.py build_ext --inplace` (the test suite refuses to run on
a stale build).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

# Plain Python modules of dideban.pipeline compiled as they are.
PLAIN_PYTHON = ("analysis", "readers", "fingerprints", "observations")

setup(
    ext_modules=cythonize(
        [
            Extension(
                "dideban.pipeline._native",
                ["src/dideban/pipeline/_native.pyx"],
                depends=["src/dideban/pipeline/_scan.h"],
            ),
            *(
                Extension(f"dideban.pipeline.{name}", [f"src/dideban/pipeline/{name}.py"])
                for name in PLAIN_PYTHON
            ),
        ],
        # Only the language level here. `_native.pyx` turns off bounds and negative-index
        # checks in its own header; the plain Python modules must keep Python's semantics
        # (`reqs[-1]` compiled without them reads out of bounds).
        compiler_directives={"language_level": "3"},
    )
)
