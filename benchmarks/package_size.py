"""Zipped size of each function's code and of the layer, as `sam build` leaves them in .aws-sam/build."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

BUILD = Path(__file__).resolve().parent.parent / ".aws-sam" / "build"


def zipped(directory: Path) -> tuple[int, int]:
    buffer = io.BytesIO()
    unpacked = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory))
                unpacked += path.stat().st_size
    return len(buffer.getvalue()), unpacked


def main() -> None:
    if not BUILD.exists():
        sys.exit("run `make build` first")
    print(f"{'artifact':<26} {'zipped':>10} {'unpacked':>10}")
    for directory in sorted(p for p in BUILD.iterdir() if p.is_dir()):
        size, unpacked = zipped(directory)
        print(f"{directory.name:<26} {size / 1024:>7.1f} KB {unpacked / 1024:>7.0f} KB")


if __name__ == "__main__":
    main()
