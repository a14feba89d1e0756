# How each fault of the lab's catalog is built on a real Azure VM (Ubuntu 22.04 or
# Debian 12 marketplace image, the Azure Linux agent as the image ships it). The facts
# behind each recipe are those of the lab's own fault (lab/faults/<id>.py) and of
# FACTS.md: the agent's /etc/waagent.conf keys, its unit, the handler's folder
# /var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-<version>/, the
# extension's /etc/azure/VMSnapshotScriptPluginConfig.json.
#
# Each recipe: nsg_rules (rules for the VM's NSG, as data), packages (installed by
# cloud-init at first boot), script (bash, run as root in the guest: at first boot by
# cloud-init, or later through Run Command), inject_at (when, unless the caller says),
# note (what a trainer should know about the outcome on Azure).

locals {
  # Finds the systemd unit of the Azure Linux agent: the unit of the running daemon if
  # there is one (the administrator's `ps -o unit=`), else the unit file the image has
  # (walinuxagent.service on Debian and Ubuntu, waagent.service on RHEL and SUSE).
  agent_unit_function = <<-EOT
    agent_unit() {
        daemon=$(pgrep -o -f 'waagent -daemon' || true)
        if [ -n "$daemon" ]; then
            unit=$(ps -o unit= -p "$daemon" | tr -d ' ')
            case "$unit" in *.service) echo "$unit"; return 0 ;; esac
        fi
        for unit in walinuxagent.service waagent.service; do
            if systemctl list-unit-files --no-legend "$unit" | grep -q .; then
                echo "$unit"
                return 0
            fi
        done
        echo "no Azure Linux agent unit here (walinuxagent.service or waagent.service)" >&2
        return 1
    }
  EOT

  handler_glob = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*"

  # Read in Azure/azure-linux-extensions (VMBackup/main/freezesnapshotter.py): today's
  # extension asks the host for the snapshots first and goes to storage itself only as
  # the fallback.
  host_first_note = "Not tried on Azure: today's VMSnapshotLinux takes managed-disk snapshots through the host first (its takeSnapshotFrom default firstHostThenGuest, via 168.63.129.16, which NSGs do not filter) and calls storage itself only as the fallback, so the job may complete despite the rule."

  storage_deny_rule = {
    name                       = try(local.p.name, "DenyStorageOutbound")
    priority                   = try(local.p.priority, 200)
    direction                  = "Outbound"
    access                     = "Deny"
    protocol                   = "*"
    source_address_prefix      = "*"
    source_port_range          = "*"
    destination_address_prefix = "Storage"
    destination_port_range     = "*"
  }

  app_dir = "/opt/appdb"
  plugin_config = jsonencode({
    pluginName              = "ScriptRunner"
    preScriptLocation       = "${local.app_dir}/pre-snapshot.sh"
    postScriptLocation      = "${local.app_dir}/post-snapshot.sh"
    preScriptParams         = []
    postScriptParams        = []
    preScriptNoOfRetries    = 0
    postScriptNoOfRetries   = 0
    timeoutInSeconds        = try(floor(local.p.timeout_seconds), 3600)
    continueBackupOnFailure = try(tobool(local.p.continue_on_failure), true)
    fsFreezeEnabled         = true
  })

  recipes = {
    "agent-stopped" = {
      nsg_rules = []
      packages  = []
      inject_at = "run-command"
      script    = <<-EOT
        unit=$(agent_unit)
        systemctl disable --now "$unit"
        if systemctl is-active --quiet "$unit"; then
            echo "$unit is still active after 'systemctl disable --now'" >&2
            exit 1
        fi
      EOT
      note      = "Azure calls an agent Not Ready 10 minutes after its last report: a backup started within 10 minutes of the stop ends in the 95-minute snapshot sub-task timeout (GuestAgentSnapshotTaskStatusError), one started later fails its pre-check with UserErrorGuestAgentStatusUnavailable. Hence run-command by default: run the script, wait a minute, then Backup now."
    }

    "blocked-egress" = {
      nsg_rules = [local.storage_deny_rule]
      packages  = []
      inject_at = "boot"
      script    = ""
      note      = "The deny rule is in the VM's NSG from the start; the agent is unaffected (the WireServer and HostGAPlugin are not subject to NSGs). ${local.host_first_note}"
    }

    "blocked-egress-proxy" = {
      nsg_rules = [local.storage_deny_rule]
      packages  = []
      inject_at = "boot"
      script    = <<-EOT
        sed -i -E '/^(http|https|no)_proxy=/Id' /etc/environment
        cat >> /etc/environment <<'PROXY'
        http_proxy=${coalesce(var.proxy_url, "-")}
        https_proxy=${coalesce(var.proxy_url, "-")}
        no_proxy=localhost,127.0.0.1,168.63.129.16,169.254.169.254
        PROXY
      EOT
      note      = "The organisation's proxy (proxy_url) is not built by this module: it must exist, be reachable from the VM and reach Azure Storage. /etc/waagent.conf names no HttpProxy, so the agent and the extension go straight at the NSG. ${local.host_first_note}"
    }

    "broken-extension" = {
      nsg_rules = []
      packages  = []
      inject_at = "run-command"
      script    = <<-EOT
        if ! ls -d ${local.handler_glob}/main >/dev/null 2>&1; then
            echo "no VMSnapshotLinux handler is installed: back the VM up once first" >&2
            exit 1
        fi
        # Zero-fill the handler's Python modules, sizes kept: what a crash leaves when
        # the files' metadata reached the disk and their data did not.
        find ${local.handler_glob}/main -name '*.py' -size +0 -print > /run/drill-files
        test -s /run/drill-files
        while IFS= read -r module; do
            dd if=/dev/zero of="$module" bs="$(stat -c %s "$module")" count=1 conv=notrunc status=none
        done < /run/drill-files
        rm -f /run/drill-files
      EOT
      note      = "Needs one completed backup first (the handler is installed by the first backup); run the script through Run Command afterwards. The job's end (the snapshot sub-task timeout) was measured in the lab with agent 2.7.3.0."
    }

    "cpu-saturation" = {
      nsg_rules = []
      packages  = ["stress-ng"]
      inject_at = "boot"
      script    = <<-EOT
        systemd-run --unit=${try(local.p.unit, "reporting-batch")} --description='Nightly reporting batch' /usr/bin/stress-ng --cpu ${try(floor(local.p.workers), 48)} --quiet
      EOT
      note      = "Lab-only outcome: on Azure's clock a CPU hog delays the agent by minutes, not by the 95-minute sub-task timeout, so the backup is expected to complete. The load is a transient unit and does not survive a reboot."
    }

    "extensions-disabled" = {
      nsg_rules = []
      packages  = []
      inject_at = "boot"
      script    = <<-EOT
        conf=/etc/waagent.conf
        if grep -Eq '^[[:space:]]*Extensions\.Enabled=' "$conf"; then
            sed -i -E 's/^[[:space:]]*Extensions\.Enabled=.*/Extensions.Enabled=n/' "$conf"
        else
            echo 'Extensions.Enabled=n' >> "$conf"
        fi
        grep -qx 'Extensions.Enabled=n' "$conf"
        systemctl restart "$(agent_unit)"
      EOT
      note      = "Agents before about 2.10 ignore the backup's settings and the job ends in the sub-task timeout; from about 2.10 on (the images' auto-update brings the newest agent) the agent reports an extension error within 5 minutes and the job fails with ExtensionOperationFailedForManagedDisks instead, as the scenario file says of 2.12.0.2."
    }

    "memory-pressure" = {
      nsg_rules = []
      packages  = []
      inject_at = "run-command"
      script    = <<-EOT
        headroom=${try(floor(local.p.headroom_mib), 16)}
        available=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
        size=$((available - headroom))
        if [ "$size" -le 0 ]; then echo "no memory left to fill ($available MiB available)" >&2; exit 1; fi
        # A RAM-backed scratch space the application keeps its cache in: memory no
        # process owns, so the OOM killer cannot take it back.
        mkdir -p /var/cache/report
        mountpoint -q /var/cache/report || mount -t tmpfs -o size=100% report-cache /var/cache/report
        systemd-run --unit=report-cache --description='Nightly report cache' /bin/sh -c "fallocate -l $${size}M /var/cache/report/report-cache.bin && exec sleep infinity"
      EOT
      note      = "Needs one completed backup first (run the script through Run Command afterwards). Azure's images have no swap; which process the OOM killer ends depends on what else the VM runs: on the lab's 1 GiB VM (Standard_B1s) it is the agent."
    }

    "prescript-hang" = {
      nsg_rules = []
      packages  = []
      inject_at = "boot"
      script    = <<-EOT
        mkdir -p ${local.app_dir} /etc/azure
        cat > /etc/tmpfiles.d/appdb.conf <<'TMPFILES'
        d /run/appdb 0700 root root -
        p /run/appdb/control 0600 root root -
        TMPFILES
        systemd-tmpfiles --create /etc/tmpfiles.d/appdb.conf
        test -p /run/appdb/control
        cat > ${local.app_dir}/pre-snapshot.sh <<'PRE'
        #!/bin/sh
        # appdb pre-snapshot hook: ask appdb to flush and hold its writes before the VM snapshot.
        set -e
        echo "appdb pre-snapshot: requesting flush-and-hold"
        echo flush-and-hold > /run/appdb/control
        echo "appdb pre-snapshot: writes held"
        PRE
        cat > ${local.app_dir}/post-snapshot.sh <<'POST'
        #!/bin/sh
        # appdb post-snapshot hook: let appdb resume its writes.
        echo "appdb post-snapshot: resuming writes"
        POST
        cat > /etc/azure/VMSnapshotScriptPluginConfig.json <<'CONFIG'
        ${local.plugin_config}
        CONFIG
        chown root:root ${local.app_dir}/pre-snapshot.sh ${local.app_dir}/post-snapshot.sh /etc/azure/VMSnapshotScriptPluginConfig.json
        chmod 700 ${local.app_dir}/pre-snapshot.sh ${local.app_dir}/post-snapshot.sh
        chmod 600 /etc/azure/VMSnapshotScriptPluginConfig.json
      EOT
      note      = "The extension waits for the hung pre-script up to the plugin host's 1800 s cap, then reports 308. The VM has a data disk because Azure backs a single-disk VM up crash-consistent whatever continueBackupOnFailure says."
    }
  }
}
