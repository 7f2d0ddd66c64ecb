"""Disposable Debian 12 lab hosts on systemd-nspawn: ``python -m lab --help``."""
