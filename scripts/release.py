"""`make release`: the `bbm` command line for the release, one archive a target:
dist/bbm-<version>-<target>.tar.gz holding bbm, README.md, LICENSE and
docs/cli.md, and dist/bbm-<version>-SHA256SUMS. The Makefile builds each binary
first with `cargo lambda build --release --bin bbm --lambda-dir
target/bbm-release/<target>` (zig as the cross linker, no Docker; cargo-lambda
names the binary `bootstrap`); this checks that each is an ELF executable of
its target and packs it as `bbm`. The version is Cargo.toml's."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ELF e_machine of each target (System V ABI): EM_X86_64 62, EM_AARCH64 183.
TARGETS = {"x86_64-unknown-linux-gnu": 62, "aarch64-unknown-linux-gnu": 183}
FILES = ["README.md", "LICENSE", "docs/cli.md"]


def elf_machine(data: bytes) -> int | None:
    """The machine of a 64-bit little-endian ELF executable, else None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    return int.from_bytes(data[18:20], "little")


def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def archive(version: str, target: str, binary: bytes) -> Path:
    base = f"bbm-{version}-{target}"
    path = ROOT / "dist" / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar, f"{base}/bbm", binary, 0o755)
        for f in FILES:
            add(tar, f"{base}/{Path(f).name}", (ROOT / f).read_bytes(), 0o644)
    return path


def main() -> int:
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    (ROOT / "dist").mkdir(exist_ok=True)
    sums = []
    for target, machine in TARGETS.items():
        binary = ROOT / "target" / "bbm-release" / target / "bbm" / "bootstrap"
        if not binary.exists():
            sys.exit(f"release: {binary} is missing: `make release` builds it")
        data = binary.read_bytes()
        if elf_machine(data) != machine:
            sys.exit(f"release: {binary} is not an ELF executable for {target}")
        path = archive(version, target, data)
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
        print(f"release: dist/{path.name} (bbm {len(data) / 1e6:.1f} MB)")
    (ROOT / "dist" / f"bbm-{version}-SHA256SUMS").write_text("".join(sums))
    return 0


if __name__ == "__main__":
    sys.exit(main())
