"""``vggkit demo`` (``make demo``): what is installed and registered."""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vggkit demo", description=__doc__)
    parser.parse_args(argv)
    from vggkit.plugins import plugin_infos
    from vggkit.registry import ALL
    print("vggkit plugins:")
    for info in plugin_infos(include_builtin=True):
        print(f"  {info.name:24s} {info.status:8s} {info.distribution} {info.version or ''}")
    print("registered components:")
    for kind, registry in ALL.items():
        names = [n for n in registry.known_names() if "." not in n]
        print(f"  {kind:18s} {', '.join(names) or '-'}")
    return 0
