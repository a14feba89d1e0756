#!/bin/sh
# Adapts the distribution's /etc/waagent.conf to a lab guest. Only what a container
# needs is changed; every change is written into the file with its reason, so an
# engineer comparing it with a real Azure VM sees exactly where the lab differs.
set -eu
conf=/etc/waagent.conf

set_option() {
    key=$1 value=$2 reason=$3
    sed -i -E "/^#?[[:space:]]*${key}=/d" "$conf"
    printf '# snaplab: %s\n%s=%s\n' "$reason" "$key" "$value" >> "$conf"
}

printf '\n# ---- lab changes (snaplab) ----\n' >> "$conf"
set_option Provisioning.Agent auto \
    "as on Azure images without cloud-init; the image is already provisioned"
set_option ResourceDisk.Format n "a container has no resource disk"
set_option ResourceDisk.EnableSwap n "a container has no resource disk"
set_option Logs.Console n "a container has no /dev/console"
set_option Provisioning.MonitorHostName n "the lab platform sets the hostname"
set_option AutoUpdate.Enabled n "the lab serves no agent updates: the packaged version runs"
set_option AutoUpdate.UpdateToLatestVersion n \
    "same, for agents >= 2.10 where this setting overrides AutoUpdate.Enabled"
set_option OS.RootDeviceScsiTimeout None "a container has no SCSI root device"
