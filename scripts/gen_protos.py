#!/usr/bin/env python3
"""Generate the Python stubs (with type stubs) from protos/ into uniwizard/v1/.

    python scripts/gen_protos.py           # regenerate
    python scripts/gen_protos.py --check   # fail when the committed stubs are stale

The generator versions are pinned in pyproject.toml (grpcio-tools, mypy-protobuf) so the output is
reproducible and the check is meaningful.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = Path("uniwizard") / "v1"
BIN = Path(sys.executable).parent  # the mypy-protobuf plugins live beside the interpreter


def generate(out_root: Path) -> list[Path]:
    protos = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    if not protos:
        sys.exit(f"no .proto files under {PROTO_ROOT / PACKAGE}")
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
    init = out_root / PACKAGE / "__init__.py"
    init.write_text(
        '"""Generated from protos/uniwizard/v1 by scripts/gen_protos.py. Do not edit."""\n'
    )
    return sorted(p for p in (out_root / PACKAGE).iterdir() if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        target = ROOT / PACKAGE
        if args.check:
            stale = []
            for f in fresh:
                committed = target / f.name
                if not committed.exists() or not filecmp.cmp(f, committed, shallow=False):
                    stale.append(f.name)
            extra = {p.name for p in target.glob("*_pb2*.py*")} - {f.name for f in fresh}
            stale.extend(sorted(extra))
            if stale:
                print(
                    "generated protobuf stubs are stale: "
                    + ", ".join(stale)
                    + "\nrun: python scripts/gen_protos.py",
                    file=sys.stderr,
                )
                return 1
            print(f"protobuf stubs are fresh ({len(fresh)} files)")
            return 0
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*_pb2*.py*"):
            old.unlink()
        for f in fresh:
            shutil.copyfile(f, target / f.name)
        print(f"generated {len(fresh)} files into {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
