"""The `dideban` command.

Each part of the system adds its own sub-commands through one mechanism: a module named in
COMMAND_MODULES defines `register(app)`. The built-in parts use it too, so a new part only
appends its module here.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "dideban.lab.cli",  # dideban lab ...
    "dideban.testhelper.cli",  # dideban testhelper
    "dideban.probe.cli",  # dideban run / upload / status / demo
    "dideban.probe.queue_cli",  # dideban upload / status
    "dideban.collector.cli",  # dideban collector
    "dideban.pipeline.cli",  # dideban analyze / ingest / reprocess
    "dideban.api.cli",  # dideban serve
    "dideban.demo",  # dideban demo: every part end to end
)

app = typer.Typer(
    name="dideban",
    help="Dideban: an open observatory of Internet censorship.",
    no_args_is_help=True,
    add_completion=False,
)


def build_app() -> typer.Typer:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)
    return app


def main() -> None:
    build_app()()
