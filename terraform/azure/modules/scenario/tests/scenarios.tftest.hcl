# Offline tests of the scenario submodule (no provider): each scenario it builds gives
# the NSG rules and guest changes its fault needs; the others are refused with a reason.
# Run: terraform init && terraform test (the unit suite does, in a temporary copy).

run "healthy_vm_changes_nothing" {
  command = plan

  assert {
    condition     = output.nsg_rules == [] && output.guest_script == "" && output.symptom == null
    error_message = "a healthy VM (scenario = null) must get no rule, no guest script and no symptom"
  }

  assert {
    condition     = output.cloud_init == "#cloud-config\n{}\n"
    error_message = "a healthy VM's cloud-init must be an empty #cloud-config document"
  }
}

run "every_fault_of_the_catalog_is_decided" {
  command = plan

  assert {
    condition     = alltrue([for id, why in output.support : !startswith(coalesce(why, "-"), "fault ")])
    error_message = "every fault of the catalog must be realised (recipes.tf) or refused with a reason (refused_faults)"
  }

  assert {
    condition = toset([for id, why in output.support : id if why == null]) == toset([
      "agent-stopped", "blocked-egress", "blocked-egress-proxy", "broken-extension",
      "extensions-disabled", "memory-pressure", "prescript-hang",
    ])
    error_message = "the scenarios built on Azure changed: update this test and the README's table"
  }
}

run "agent_stopped" {
  command = plan

  variables {
    scenario = "agent-stopped"
  }

  assert {
    condition     = output.nsg_rules == []
    error_message = "agent-stopped needs no NSG rule"
  }

  assert {
    condition     = strcontains(output.guest_script, "systemctl disable --now \"$unit\"") && strcontains(output.guest_script, "walinuxagent.service waagent.service")
    error_message = "agent-stopped must stop and disable the agent's unit, found by looking (walinuxagent or waagent)"
  }

  assert {
    condition     = output.inject_at == "run-command" && strcontains(output.run_command_script, "systemd-run --quiet --on-active=60")
    error_message = "agent-stopped is applied through Run Command, a minute later, so the backup starts inside Azure's 10-minute window"
  }

  assert {
    condition     = output.cloud_init == "#cloud-config\n{}\n"
    error_message = "with inject_at = run-command nothing runs at first boot"
  }

  assert {
    condition     = output.symptom.code == "GuestAgentSnapshotTaskStatusError"
    error_message = "agent-stopped's job error comes from its scenario file"
  }
}

run "agent_stopped_at_boot" {
  command = plan

  variables {
    scenario  = "agent-stopped"
    inject_at = "boot"
  }

  assert {
    condition     = strcontains(output.cloud_init, "/run/drill-setup.sh") && strcontains(output.cloud_init, "systemctl disable --now") && output.run_command_script == null
    error_message = "inject_at = boot puts the guest script in cloud-init's write_files and runcmd"
  }
}

run "blocked_egress" {
  command = plan

  variables {
    scenario = "blocked-egress"
  }

  assert {
    condition = output.nsg_rules == [{
      name                       = "DenyStorageOutbound"
      priority                   = 200
      direction                  = "Outbound"
      access                     = "Deny"
      protocol                   = "*"
      source_address_prefix      = "*"
      source_port_range          = "*"
      destination_address_prefix = "Storage"
      destination_port_range     = "*"
    }]
    error_message = "blocked-egress denies outbound traffic to the Storage tag, with the scenario file's name and priority"
  }

  assert {
    condition     = output.guest_script == "" && output.cloud_init == "#cloud-config\n{}\n"
    error_message = "blocked-egress changes nothing in the guest"
  }

  assert {
    condition     = output.symptom.code == "ExtensionSnapshotFailedNoNetwork"
    error_message = "blocked-egress's job error comes from its scenario file"
  }

  assert {
    condition     = strcontains(output.symptom.notes, "firstHostThenGuest") && strcontains(output.symptom.notes, "may complete")
    error_message = "blocked-egress's notes must say that today's extension snapshots through the host first, so the job may complete"
  }
}

run "blocked_egress_with_other_rule_name_and_priority" {
  command = plan

  variables {
    scenario = "blocked-egress"
    params   = { name = "deny-storage", priority = 310 }
  }

  assert {
    condition     = output.nsg_rules[0].name == "deny-storage" && output.nsg_rules[0].priority == 310
    error_message = "params override the scenario file's rule name and priority"
  }
}

run "blocked_egress_proxy" {
  command = plan

  variables {
    scenario  = "blocked-egress-proxy"
    proxy_url = "http://10.0.2.4:3128/"
  }

  assert {
    condition     = length(output.nsg_rules) == 1 && output.nsg_rules[0].destination_address_prefix == "Storage" && output.nsg_rules[0].access == "Deny"
    error_message = "blocked-egress-proxy has blocked-egress's deny rule"
  }

  assert {
    condition     = strcontains(output.cloud_init, "http_proxy=http://10.0.2.4:3128/") && strcontains(output.cloud_init, "no_proxy=localhost,127.0.0.1,168.63.129.16,169.254.169.254") && strcontains(output.cloud_init, "/etc/environment")
    error_message = "blocked-egress-proxy writes the proxy to /etc/environment only, keeping the WireServer and IMDS off it"
  }

  assert {
    condition     = !strcontains(output.guest_script, "waagent.conf")
    error_message = "blocked-egress-proxy must not set the agent's HttpProxy"
  }
}

run "broken_extension" {
  command = plan

  variables {
    scenario = "broken-extension"
  }

  assert {
    condition     = strcontains(output.guest_script, "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*/main -name '*.py'") && strcontains(output.guest_script, "dd if=/dev/zero")
    error_message = "broken-extension zero-fills the installed VMSnapshotLinux handler's Python modules"
  }

  assert {
    condition     = output.warmup_backup && output.inject_at == "run-command" && output.run_command_script != null && output.cloud_init == "#cloud-config\n{}\n"
    error_message = "broken-extension needs the handler installed by a first backup: applied through Run Command"
  }
}

run "extensions_disabled" {
  command = plan

  variables {
    scenario = "extensions-disabled"
  }

  assert {
    condition     = strcontains(output.cloud_init, "s/^[[:space:]]*Extensions\\.Enabled=.*/Extensions.Enabled=n/") && strcontains(output.cloud_init, "/etc/waagent.conf") && strcontains(output.cloud_init, "systemctl restart \"$(agent_unit)\"")
    error_message = "extensions-disabled sets Extensions.Enabled=n in /etc/waagent.conf with sed and restarts the agent, at first boot"
  }

  assert {
    condition     = output.inject_at == "boot" && output.run_command_script == null
    error_message = "extensions-disabled is applied at first boot"
  }
}

run "memory_pressure" {
  command = plan

  variables {
    scenario = "memory-pressure"
  }

  assert {
    condition     = strcontains(output.guest_script, "headroom=16") && strcontains(output.guest_script, "mount -t tmpfs") && strcontains(output.guest_script, "systemd-run --unit=report-cache")
    error_message = "memory-pressure fills RAM-backed space up to the scenario file's headroom, from a transient unit"
  }

  assert {
    condition     = output.inject_at == "run-command"
    error_message = "memory-pressure warms up first: applied through Run Command"
  }
}

run "prescript_hang" {
  command = plan

  variables {
    scenario = "prescript-hang"
  }

  assert {
    condition     = strcontains(output.cloud_init, "/etc/azure/VMSnapshotScriptPluginConfig.json") && strcontains(output.cloud_init, "\"timeoutInSeconds\":3600") && strcontains(output.cloud_init, "\"continueBackupOnFailure\":false")
    error_message = "prescript-hang writes the plugin config with the scenario file's timeout and continueBackupOnFailure"
  }

  assert {
    condition     = strcontains(output.cloud_init, "p /run/appdb/control 0600 root root -") && strcontains(output.cloud_init, "echo flush-and-hold > /run/appdb/control") && strcontains(output.cloud_init, "chmod 600 /etc/azure/VMSnapshotScriptPluginConfig.json")
    error_message = "prescript-hang's pre-script blocks on a FIFO nobody reads; config mode 600, scripts 700"
  }

  assert {
    condition     = output.symptom.code == "ExtensionOperationFailedForManagedDisks"
    error_message = "prescript-hang's job error comes from its scenario file"
  }
}

run "cpu_saturation_only_when_lab_only_is_allowed" {
  command = plan

  variables {
    scenario       = "cpu-saturation"
    allow_lab_only = true
  }

  assert {
    condition     = strcontains(output.cloud_init, "stress-ng") && strcontains(output.cloud_init, "--cpu 48") && output.symptom.azure_clock == "lab-only"
    error_message = "cpu-saturation, when allowed, installs stress-ng and runs the scenario file's 48 workers; its symptom says lab-only"
  }
}

run "cpu_saturation_refused" {
  command = plan

  variables {
    scenario = "cpu-saturation"
  }

  expect_failures = [var.scenario]
}

run "dhcp_disabled_refused" {
  command = plan

  variables {
    scenario = "dhcp-disabled"
  }

  expect_failures = [var.scenario]
}

run "extension_update_failed_refused" {
  command = plan

  variables {
    scenario = "extension-update-failed"
  }

  expect_failures = [var.scenario]
}

run "guest_shutdown_refused" {
  command = plan

  variables {
    scenario = "guest-shutdown"
  }

  expect_failures = [var.scenario]
}

run "schedule_storm_refused" {
  command = plan

  variables {
    scenario = "schedule-storm"
  }

  expect_failures = [var.scenario]
}

run "stale_agent_refused" {
  command = plan

  variables {
    scenario = "stale-agent"
  }

  expect_failures = [var.scenario]
}

run "unknown_scenario_refused" {
  command = plan

  variables {
    scenario = "no-such-scenario"
  }

  expect_failures = [var.scenario]
}

run "proxy_scenario_without_proxy_refused" {
  command = plan

  variables {
    scenario = "blocked-egress-proxy"
  }

  expect_failures = [var.proxy_url]
}

run "proxy_url_that_is_not_a_url_refused" {
  command = plan

  variables {
    scenario  = "blocked-egress-proxy"
    proxy_url = "http://x:1/; rm -rf /"
  }

  expect_failures = [var.proxy_url]
}

run "warmup_scenario_at_boot_refused" {
  command = plan

  variables {
    scenario  = "broken-extension"
    inject_at = "boot"
  }

  expect_failures = [var.inject_at]
}

run "unknown_param_refused" {
  command = plan

  variables {
    scenario = "blocked-egress"
    params   = { colour = "red" }
  }

  expect_failures = [var.params]
}

run "bad_priority_refused" {
  command = plan

  variables {
    scenario = "blocked-egress"
    params   = { priority = 50 }
  }

  expect_failures = [var.params]
}

run "rule_name_with_shell_refused" {
  command = plan

  variables {
    scenario = "blocked-egress"
    params   = { name = "x; reboot" }
  }

  expect_failures = [var.params]
}
