"""The ``madengine`` console script: an Invoke ``Program`` over the same namespace as ``inv``.

``madengine build --tags dummy`` and ``inv build --tags dummy`` behave the same from any directory. Unlike ``inv``,
a Program with a bundled namespace does not load a project ``invoke.yaml`` by itself; this one loads the
``invoke.yaml`` of the current directory (a MAD checkout), so both read the same ``madengine:`` settings.
"""

from __future__ import annotations

import os

from invoke import Program

from madengine import __version__


class MadengineProgram(Program):
    """Invoke Program that also loads ``./invoke.yaml`` as project configuration."""

    def parse_collection(self) -> None:
        """Use the bundled namespace, then load the project config of the working directory."""
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


def main() -> None:
    """Console-script entry point (``madengine ...``)."""
    from madengine.tasks import ns

    MadengineProgram(namespace=ns, version=__version__, name="madengine", binary="madengine",
                     binary_names=["madengine"]).run()
