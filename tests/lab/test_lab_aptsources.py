"""lab/aptsources.py: the mirror comes from this machine's apt sources, whatever their format."""

from __future__ import annotations

import pytest
from lab_helpers import REPO  # noqa: F401 - puts the repo root on sys.path

from lab import aptsources
from lab.common import LabError

DEB822 = """\
Types: deb deb-src
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""


@pytest.fixture
def apt_dir(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    monkeypatch.setattr(aptsources, "APT_DIR", tmp_path)
    return tmp_path


def test_deb822_sources(apt_dir):
    (apt_dir / "sources.list.d/debian.sources").write_text(DEB822)
    (apt_dir / "sources.list.d/other.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n"
    )
    got = [(s.uri, s.suite) for s in aptsources.machine_sources()]
    assert got == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://mirror.example/debian-security", "bookworm-security"),
    ]
    assert aptsources.mirror() == "http://mirror.example/debian"
    text = aptsources.image_sources()
    assert "URIs: http://mirror.example/debian-security\nSuites: bookworm-security" in text
    assert "vendor.example" not in text and "disabled.example" not in text


def test_one_line_sources_and_https_through_the_proxy(apt_dir):
    (apt_dir / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n"
        "deb-src https://m.example/debian bookworm main\n"
        "deb https://packages.vendor.example/apt cloud-sdk-bookworm main\n"
    )
    assert aptsources.mirror() == "https://m.example/debian"
    assert "URIs: http://HTTPS///m.example/debian\n" in aptsources.image_sources()


def test_no_bookworm_mirror_is_a_clear_error(apt_dir):
    (apt_dir / "sources.list").write_text("deb http://m.example/debian trixie main\n")
    with pytest.raises(LabError, match="no Debian 'bookworm' entry"):
        aptsources.mirror()
