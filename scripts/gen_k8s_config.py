#!/usr/bin/env python3
"""Generate deploy/k8s/config.yaml, the ConfigMap with every file of configs/.

    python scripts/gen_k8s_config.py           # regenerate after editing configs/
    python scripts/gen_k8s_config.py --check   # fail when the committed ConfigMap is stale

kustomize refuses files outside its directory, so the ConfigMap holds copies; this script is
the one way they are made, and the check (run by the tests) keeps them equal to configs/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
OUT = ROOT / "deploy" / "k8s" / "config.yaml"
NAME = "uniwizard-config"
HEADER = (
    "# Generated from configs/ by scripts/gen_k8s_config.py: edit those files and run it.\n"
    "# Mounted at /app/configs in every Uniwizard pod (UNIWIZARD_CONFIG, UNIWIZARD_POLICY).\n"
)


class _Literal(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the copies read like the files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _str)


def render() -> str:
    files = sorted(p for p in CONFIGS.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        sys.exit(f"no files in {CONFIGS}")
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/name": "uniwizard"}},
        "data": {p.name: p.read_text(encoding="utf-8") for p in files},
    }
    body = yaml.dump(config_map, Dumper=_Literal, sort_keys=False, width=1000)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if config.yaml is stale")
    args = parser.parse_args()
    fresh = render()
    rel = OUT.relative_to(ROOT)
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != fresh:
            print(f"{rel} is stale: run python scripts/gen_k8s_config.py", file=sys.stderr)
            return 1
        print(f"{rel} is up to date")
        return 0
    OUT.write_text(fresh, encoding="utf-8")
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
