"""Build of Dideban's one native module (everything else is in pyproject.toml).

`dideban.pipeline._native` is Cython: the pipeline's hot path (a JSON decoder that keeps only
the fields the analysis reads, and the extraction of observations from them). It is compiled
at install time (`pip install -e .` or `pip install .`), which needs a C compiler and the
Python headers; Cython itself is a build requirement that pip fetches.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("dideban.pipeline._native", ["src/dideban/pipeline/_native.pyx"])],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
        },
    )
)
