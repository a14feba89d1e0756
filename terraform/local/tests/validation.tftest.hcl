# Bad input never reaches a shell: each variable's validation refuses it at plan time.
# Offline (plans only): `terraform test` in terraform/local.

run "lab_name_with_a_space" {
  command = plan
  variables { lab_name = "Bad Name" }
  expect_failures = [var.lab_name]
}

run "lab_name_with_shell" {
  command = plan
  variables { lab_name = "lab;reboot" }
  expect_failures = [var.lab_name]
}

run "lab_name_too_long" {
  command = plan
  variables { lab_name = "a23456789012345678901" }
  expect_failures = [var.lab_name]
}

run "unknown_scenario" {
  command = plan
  variables { scenario = "no-such-scenario" }
  expect_failures = [var.scenario]
}

run "unknown_agent_version" {
  command = plan
  variables { vms = [{ name = "vm1", agent = "9.9.9" }] }
  expect_failures = [var.vms]
}

run "bad_vm_name" {
  command = plan
  variables { vms = [{ name = "VM_1" }] }
  expect_failures = [var.vms]
}

run "unknown_guest_variant" {
  command = plan
  variables { vms = [{ name = "vm1", guest = "windows" }] }
  expect_failures = [var.vms]
}

run "vm_named_twice" {
  command = plan
  variables { vms = [{ name = "vm1" }, { name = "vm1" }] }
  expect_failures = [var.vms]
}

run "no_vms" {
  command = plan
  variables { vms = [] }
  expect_failures = [var.vms]
}

run "scenario_and_vms" {
  command = plan
  variables {
    scenario = "agent-stopped"
    vms      = [{ name = "vm1" }]
  }
  expect_failures = [var.vms]
}

run "time_scale_zero" {
  command = plan
  variables { time_scale = 0 }
  expect_failures = [var.time_scale]
}

run "snaplab_with_shell" {
  command = plan
  variables { snaplab = "snaplab; rm -rf ~" }
  expect_failures = [var.snaplab]
}
