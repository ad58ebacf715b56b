"""Invoke entry point: the namespace lives in the package (``madengine.tasks``); run ``inv --list``."""

from madengine.tasks import ns

__all__ = ["ns"]
