#!/bin/sh
# Derived image: base + PostgreSQL 15 (cluster 15/main created, started at boot) and the tools its roles use.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
apt-get update -q
apt-get install -y -q $LAB_PACKAGES
apt-get clean
rm -rf /var/lib/apt/lists/partial /var/lib/apt/periodic/*stamp
touch -d @0 /var/lib/apt/lists
rm -rf /var/log/apt/* /var/log/*.log /var/cache/debconf/*-old /var/lib/dpkg/*-old /tmp/*
