#!/bin/sh
# Customise the debootstrapped tree (runs chrooted). Part of the image recipe: editing it rebuilds the image.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# Small, fast apt: no docs/man pages, compressed indexes, no translations, no recommends.
cat > /etc/dpkg/dpkg.cfg.d/01lab-nodoc <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*/LC_MESSAGES/*.mo
CFG
cat > /etc/apt/apt.conf.d/90lab <<'CFG'
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CFG
rm -f /etc/apt/sources.list
rm -rf /var/lib/apt/lists/*
find /usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
rm -rf /usr/share/man/* /usr/share/info/*
find /usr/share/locale -path '*/LC_MESSAGES/*.mo' -delete

apt-get update -q
apt-get -y -q -o Dpkg::Options::=--force-confold upgrade

# Key login for root and the sudo user `lab` (authorized_keys are written per host by `lab up`).
useradd --create-home --shell /bin/bash --groups sudo lab
echo 'lab ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/lab
chmod 0440 /etc/sudoers.d/lab
install -d -m 0700 /root/.ssh
install -d -m 0700 -o lab -g lab /home/lab/.ssh
cat > /etc/ssh/sshd_config.d/lab.conf <<'CFG'
PasswordAuthentication no
PermitRootLogin prohibit-password
UseDNS no
CFG

# Host keys are generated at each host's first boot, so every host has its own.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/lab-ssh-keygen.service <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
RequiredBy=ssh.service
UNIT
systemctl enable lab-ssh-keygen.service ssh.service

# Quiet hosts: no periodic jobs, no gettys, nothing that cannot work in a container.
systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
  man-db.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
  console-getty.service getty@tty1.service systemd-timesyncd.service

# No DNS on lab hosts (apt reaches its proxy by address): an empty resolv.conf makes lookups fail fast
# instead of timing out on the build machine's resolver, which debootstrap copied in.
: > /etc/resolv.conf

# Unique identity per host: systemd fills an empty machine-id at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

# Leave apt's lists in place but look stale, so Ansible's apt (cache_valid_time) refreshes them.
apt-get clean
rm -rf /var/lib/apt/lists/partial /var/lib/apt/periodic/*stamp
touch -d @0 /var/lib/apt/lists
rm -rf /var/log/apt/* /var/log/*.log /var/cache/debconf/*-old /var/lib/dpkg/*-old /tmp/* /root/.bash_history
