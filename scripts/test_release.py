"""scripts/release.py: what it accepts as each target's binary and what each archive holds."""

from __future__ import annotations

import tarfile
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import release


def elf(machine: int) -> bytes:
    # ELF magic, 64-bit (2), little-endian (1), then e_machine at offset 18.
    head = bytearray(b"\x7fELF\x02\x01" + bytes(58))
    head[18:20] = machine.to_bytes(2, "little")
    return bytes(head)


class ReleaseTest(unittest.TestCase):
    def test_the_machine_of_an_elf_executable_is_read_and_anything_else_refused(self):
        self.assertEqual(release.elf_machine(elf(62)), 62)
        self.assertEqual(release.elf_machine(elf(183)), 183)
        self.assertIsNone(release.elf_machine(b"\xcf\xfa\xed\xfe" + bytes(60)))  # Mach-O
        self.assertIsNone(release.elf_machine(b"#!/bin/sh\n"))

    def test_each_archive_holds_bbm_executable_and_its_docs_under_one_folder(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "dist").mkdir()
            (root / "docs").mkdir()
            for f in release.FILES:
                (root / f).write_text(f"text of {f}")
            with mock.patch.object(release, "ROOT", root):
                path = release.archive("1.2.3", "aarch64-unknown-linux-gnu", elf(183))
            self.assertEqual(path.name, "bbm-1.2.3-aarch64-unknown-linux-gnu.tar.gz")
            with tarfile.open(path) as tar:
                members = {m.name: m for m in tar.getmembers()}
                base = "bbm-1.2.3-aarch64-unknown-linux-gnu"
                self.assertEqual(sorted(members),
                                 sorted([f"{base}/bbm", f"{base}/README.md", f"{base}/LICENSE", f"{base}/cli.md"]))
                self.assertEqual(members[f"{base}/bbm"].mode, 0o755)
                self.assertEqual(tar.extractfile(f"{base}/bbm").read(), elf(183))


if __name__ == "__main__":
    unittest.main()
