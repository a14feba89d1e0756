locals {
  built   = local.entry != null && local.refusal == null
  chosen  = local.built ? [for id in local.fault_ids : local.recipes[id]] : []
  scripts = [for r in local.chosen : r.script if r.script != ""]

  # One bash script with every guest change of the scenario; empty when there is none.
  script = length(local.scripts) == 0 ? "" : join("\n", concat(
    ["#!/bin/bash", "set -euo pipefail", local.agent_unit_function],
    local.scripts,
  ))

  # A recipe that wants its fault applied just before the backup (not at first boot)
  # decides, unless the caller said, and so does a scenario that needs a warm-up backup.
  inject = coalesce(
    var.inject_at,
    local.warmup || anytrue([for r in local.chosen : r.inject_at == "run-command"]) ? "run-command" : "boot",
  )
  at_boot = local.script != "" && local.inject == "boot"

  # The guest script goes to /run (tmpfs) and is removed after it ran.
  packages = distinct(flatten([for r in local.chosen : r.packages]))
  cloud_config = {
    for key, value in {
      packages    = local.packages
      write_files = [{ path = "/run/drill-setup.sh", owner = "root:root", permissions = "0700", content = local.script }]
      runcmd      = [["bash", "/run/drill-setup.sh"], ["rm", "-f", "/run/drill-setup.sh"]]
    } : key => value if key == "packages" ? length(local.packages) > 0 : local.at_boot
  }
}

output "scenario" {
  description = "The scenario id (null: a healthy VM)."
  value       = var.scenario

  precondition {
    condition     = toset(keys(local.recipes)) == toset(local.realised_faults)
    error_message = "local.realised_faults (main.tf) must name exactly the faults local.recipes (recipes.tf) builds."
  }

  precondition {
    condition     = alltrue([for k, ok in local.param_checks : ok])
    error_message = "the scenario's fault parameters (scenarios.json, with params): expected ${join("; ", [for k, ok in local.param_checks : local.param_rules[k] if !ok])}."
  }
}

output "nsg_rules" {
  description = "Security rules for the VM's NSG, as data: name, priority, direction, access, protocol, source and destination address prefixes (a service tag such as Storage) and port ranges."
  value       = flatten([for r in local.chosen : r.nsg_rules])
}

output "cloud_init" {
  description = "The cloud-init document (#cloud-config) for the VM's custom_data, before base64: packages, and the guest script when it runs at first boot."
  value       = "#cloud-config\n${yamlencode(local.cloud_config)}"
}

output "guest_script" {
  description = "The bash script that applies the scenario's guest changes as root (\"\" when the scenario changes nothing in the guest)."
  value       = local.script
}

output "inject_at" {
  description = "When the guest changes are applied: \"boot\" (cloud-init) or \"run-command\" (the trainer runs run_command_script through Run Command)."
  value       = local.script == "" ? "boot" : local.inject
}

output "run_command_script" {
  description = "For inject_at = \"run-command\": a script for Run Command (RunShellScript) that schedules the guest script one minute later in its own transient unit, so Run Command's own agent round trip is over before the fault applies; null otherwise."
  value = local.script != "" && local.inject == "run-command" ? join("\n", [
    "#!/bin/bash",
    "set -euo pipefail",
    "base64 -d > /run/drill-setup.sh <<'SCRIPT'",
    base64encode(local.script),
    "SCRIPT",
    "chmod 700 /run/drill-setup.sh",
    "systemd-run --quiet --on-active=60 --unit=drill-setup /bin/bash /run/drill-setup.sh",
    "echo 'scheduled: applies in 60 s'",
  ]) : null
}

output "symptom" {
  description = "The job error the scenario file expects (code and Azure's message), whether the scenario holds on Azure's clock, and what a trainer should know about the outcome on Azure."
  value = local.built ? {
    code        = local.entry.backup_error
    message     = local.entry.backup_error_message
    azure_clock = local.entry.azure_clock
    notes       = join(" ", [for r in local.chosen : r.note])
  } : null
}

output "warmup_backup" {
  description = "Whether the scenario needs one completed backup before its fault."
  value       = local.warmup
}

output "support" {
  description = "Every scenario of the catalog: null when this module builds it on Azure, else why not (with allow_lab_only as given)."
  value       = local.refusals
}
