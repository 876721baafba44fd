"""`make package`: the release's two files, for deploying without Rust.

- dist/bedrock-batch-monitor-<version>-arm64.zip: the arm64 `bootstrap` that
  `cargo lambda build --release --arm64` wrote (the Makefile builds it first, with
  the same command `sam build` runs, so the two share one build);
- dist/packaged.yaml: template.yaml whose function's CodeUri is that zip, without
  the build step and without the Serverless Application Repository metadata
  (its LICENSE and README are files of the source tree, not of the release).

`sam deploy --template-file packaged.yaml --guided`, run beside the zip, uploads
it and deploys: only the SAM CLI is needed. The version is Cargo.toml's."""

from __future__ import annotations

import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "target" / "lambda" / "bedrock-batch-monitor" / "bootstrap"


def is_aarch64_elf(data: bytes) -> bool:
    # ELF magic, 64-bit, little-endian, e_machine 183 (EM_AARCH64) at offset 18.
    return data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1 and int.from_bytes(data[18:20], "little") == 183


def packaged_template(text: str, zip_name: str, version: str) -> str:
    """template.yaml's text with the three changes; each must apply exactly once."""
    lines = text.splitlines(keepends=True)
    # 1. The Serverless Application Repository block: its comment and the
    #    top-level Metadata key, up to the next top-level key.
    start = next(i for i, line in enumerate(lines) if line.startswith("# What the AWS Serverless Application Repository"))
    meta = next(i for i in range(start, len(lines)) if lines[i].startswith("Metadata:"))
    end = next(i for i in range(meta + 1, len(lines)) if re.match(r"^[A-Za-z]", lines[i]))
    lines[start:end] = []
    out = "".join(lines)
    # 2. The function's build step.
    build = "      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: bedrock-batch-monitor\n"
    if out.count(build) != 1:
        sys.exit("package: template.yaml's MonitorFunction build metadata changed; update scripts/package.py")
    out = out.replace(build, "")
    # 3. The code: the zip beside this file.
    code = "      CodeUri: .\n"
    if out.count(code) != 1:
        sys.exit("package: template.yaml's MonitorFunction CodeUri changed; update scripts/package.py")
    out = out.replace(code, f"      CodeUri: {zip_name}\n")
    header = (
        f"# bedrock-batch-monitor {version}, packaged by `make package` from template.yaml.\n"
        f"# The function's code is {zip_name}, beside this file. Deploy with only the\n"
        "# SAM CLI: sam deploy --template-file packaged.yaml --guided (see the README, Deploy).\n"
    )
    return header + out


def main() -> int:
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    if not BOOTSTRAP.exists():
        sys.exit(f"package: {BOOTSTRAP} is missing: build it with `cargo lambda build --release --arm64`")
    data = BOOTSTRAP.read_bytes()
    if not is_aarch64_elf(data):
        sys.exit(f"package: {BOOTSTRAP} is not an aarch64 ELF executable")
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    zip_name = f"bedrock-batch-monitor-{version}-arm64.zip"
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 << 16)  # a regular file, executable: Lambda runs it as is
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(dist / zip_name, "w") as z:
        z.writestr(info, data)
    (dist / "packaged.yaml").write_text(packaged_template((ROOT / "template.yaml").read_text(), zip_name, version))
    size = (dist / zip_name).stat().st_size
    print(f"package: dist/{zip_name} ({size / 1e6:.1f} MB) and dist/packaged.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
