# The plan derives the commands the lab is made and removed with (no command runs in a
# plan). Offline: `terraform test` in terraform/local.

run "healthy_lab_by_default" {
  command = plan

  assert {
    condition     = terraform_data.lab.input.commands.up == "snaplab up --lab tf-lab"
    error_message = "A healthy lab is snaplab's default VM: no --vm, no --scenario."
  }
  assert {
    condition     = terraform_data.lab.input.commands.down == "snaplab down tf-lab --missing-ok"
    error_message = "Destroy takes the lab down by name."
  }
  assert {
    condition     = !strcontains(terraform_data.lab.input.create, "SNAPLAB_TIME_SCALE")
    error_message = "Without time_scale the CLI's own default applies."
  }
}

run "scenario_drill" {
  command = plan
  variables {
    lab_name = "tfl-be"
    scenario = "blocked-egress"
    snaplab  = "/opt/snaplab/.venv/bin/snaplab"
  }

  assert {
    condition     = terraform_data.lab.input.commands.up == "/opt/snaplab/.venv/bin/snaplab up --lab tfl-be --scenario blocked-egress"
    error_message = "A scenario is `up --scenario ID` with the given CLI."
  }
  assert {
    condition     = terraform_data.lab.input.commands.status == "/opt/snaplab/.venv/bin/snaplab status tfl-be --json"
    error_message = "The outputs come from `status --json`."
  }
  assert {
    condition     = terraform_data.lab.input.commands.env == "/opt/snaplab/.venv/bin/snaplab env tfl-be --json"
    error_message = "The exports come from `env --json`."
  }
  assert {
    condition     = strcontains(terraform_data.lab.input.create, "\n/opt/snaplab/.venv/bin/snaplab up --lab tfl-be --scenario blocked-egress\n")
    error_message = "The create step runs `up`."
  }
  assert {
    condition     = terraform_data.lab.triggers_replace.scenario == "blocked-egress"
    error_message = "Another scenario is another lab."
  }
}

run "vms_with_agents_and_variants" {
  command = plan
  variables {
    vms = [
      { name = "vm1", agent = "2.2.47" },
      { name = "vm2", guest = "netplan" },
      { name = "vm3", agent = "2.12.0.2", guest = "waagent-unit" },
      { name = "vm4" },
    ]
  }

  assert {
    condition     = terraform_data.lab.input.commands.up == "snaplab up --lab tf-lab --vm vm1:agent=2.2.47 --vm vm2:guest=netplan --vm vm3:agent=2.12.0.2,guest=waagent-unit --vm vm4"
    error_message = "Each VM is one --vm NAME[:agent=VERSION,guest=VARIANT]."
  }
  assert {
    condition     = length(terraform_data.lab.triggers_replace.vms) == 4
    error_message = "The VMs are part of what replaces the lab."
  }
}

run "time_scale" {
  command = plan
  variables { time_scale = 60 }

  assert {
    condition     = strcontains(terraform_data.lab.input.create, "export SNAPLAB_TIME_SCALE=60\n")
    error_message = "time_scale reaches snaplab as SNAPLAB_TIME_SCALE."
  }
  assert {
    condition     = terraform_data.lab.triggers_replace.time_scale == 60
    error_message = "Another clock is another lab."
  }
}
