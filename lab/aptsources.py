"""Read THIS machine's apt sources at run time: the lab uses the same Debian mirror (never hard-coded)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.common import LabError

SUITE = "bookworm"
APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class Source:
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str = ""


def _deb822(text: str) -> list[Source]:
    out: list[Source] = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in para.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append(
                    Source(
                        uri, suite, tuple(fields.get("components", "").split()), fields.get("signed-by", "")
                    )
                )
    return out


def _one_line(text: str) -> list[Source]:
    out: list[Source] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^]]*\]", " ", line[4:])
        parts = line.split()
        if len(parts) >= 2:
            out.append(Source(parts[0], parts[1], tuple(parts[2:])))
    return out


def machine_sources() -> list[Source]:
    """Debian bookworm entries of /etc/apt/sources.list(.d), in apt's order."""
    found: list[Source] = []
    main = APT_DIR / "sources.list"
    if main.is_file():
        found += _one_line(main.read_text())
    d = APT_DIR / "sources.list.d"
    for f in sorted(d.glob("*")) if d.is_dir() else []:
        if f.suffix == ".sources":
            found += _deb822(f.read_text())
        elif f.suffix == ".list":
            found += _one_line(f.read_text())
    ours = [s for s in found if s.suite == SUITE or s.suite.startswith(SUITE + "-")]
    if not any(s.suite == SUITE for s in ours):
        raise LabError(
            f"no Debian '{SUITE}' entry in this machine's apt sources ({APT_DIR}/sources.list[.d]); "
            "the lab image uses the same mirror"
        )
    return ours


def mirror() -> str:
    """URI of the main Debian archive (debootstrap's mirror)."""
    return next(s.uri for s in machine_sources() if s.suite == SUITE)


def via_proxy(uri: str) -> str:
    """apt-cacher-ng caches only plain http; https mirrors go through its ``HTTPS///`` form."""
    if uri.startswith("https://"):
        return "http://HTTPS///" + uri[len("https://") :]
    return uri


def image_sources() -> str:
    """deb822 text for the image's /etc/apt/sources.list.d/debian.sources."""
    paras = []
    for s in machine_sources():
        comps = " ".join(c for c in s.components if c in ("main", "contrib", "non-free", "non-free-firmware"))
        lines = [
            "Types: deb",
            f"URIs: {via_proxy(s.uri)}",
            f"Suites: {s.suite}",
            f"Components: {comps or 'main'}",
        ]
        lines.append("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
        paras.append("\n".join(lines))
    return "\n\n".join(dict.fromkeys(paras)) + "\n"


def machine_proxy() -> str:
    """An http proxy this machine's apt itself uses, if any (becomes apt-cacher-ng's upstream proxy)."""
    try:
        out = subprocess.run(
            ["apt-config", "shell", "P", "Acquire::http::Proxy"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return ""
    m = re.match(r"P='([^']*)'", out.strip())
    value = m.group(1) if m else ""
    return "" if value.upper() == "DIRECT" else value
