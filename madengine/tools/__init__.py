"""madengine's v1 import path ``madengine.tools.discover_models``, used by MAD ``get_models_json.py`` files."""
