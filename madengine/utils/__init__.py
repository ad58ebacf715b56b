"""madengine's v2 import path ``madengine.utils.discover_models``, used by MAD ``get_models_json.py`` files."""
