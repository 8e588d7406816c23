"""Import a script of tools/ as a module (tools/ is not a package), for tests of its functions.

Run as ``python tools/x.py``, a tool finds the project's packages through the install and its
sibling tools (profile_track imports bench_track_fps, heldout_clips prepare_data) because Python
puts the script's folder on sys.path; loaded here, tools/ goes on sys.path for the same imports.
"""
import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.append(str(TOOLS))  # last: a tool's name never shadows another module
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(mod)
    return mod
