"""Dideban: an open observatory of Internet censorship.

Layers (see ../shared/STYLE.md and tests/contracts/test_layers.py):
model <- netx <- measure <- nettests <- probe; pipeline and store depend only on model;
servers (testhelper, collector, api, web) and the lab sit on top.
"""

__version__ = "0.1.0"
SOFTWARE_NAME = "dideban"
