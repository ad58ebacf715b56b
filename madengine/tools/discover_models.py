"""Import shim for MAD ``get_models_json.py`` files written for madengine v1.

They fall back to ``from madengine.tools.discover_models import CustomModel``; the class lives in
:mod:`madengine.hub` (also re-exported by :mod:`madengine.utils.discover_models`, the v2 path).
"""

from madengine.hub import CustomModel

__all__ = ["CustomModel"]
