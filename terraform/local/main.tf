# The lab through the snaplab CLI, with Terraform's built-in terraform_data only.
#
# terraform_data.lab runs `snaplab up` when created and `snaplab down` when destroyed; its
# triggers replace the lab whenever what it is made of changes. The create step also writes
# `snaplab status --json` and `snaplab env --json` to files, which terraform_data.facts reads
# in the same apply and keeps in state: the outputs survive the files.

locals {
  # Where the create step leaves its files, shell-quoted ('...' with ' escaped) for the
  # commands; abspath so that the destroy step finds them from the same working directory.
  files_dir   = "${abspath(path.root)}/.snaplab"
  status_file = "${local.files_dir}/${var.lab_name}.status.json"
  env_file    = "${local.files_dir}/${var.lab_name}.env.json"
  # Written just before `up` when no lab of this name exists: destroy takes down only a lab
  # this configuration made (a failed apply against someone's lab of the same name leaves it).
  owned_file = "${local.files_dir}/${var.lab_name}.owned"
  quoted = {
    for key, path in {
      dir    = local.files_dir
      status = local.status_file
      env    = local.env_file
      owned  = local.owned_file
    } : key => "'${replace(path, "'", "'\\''")}'"
  }

  # snaplab's --vm NAME[:agent=VERSION,guest=VARIANT], as the CLI reads it back.
  vm_options = var.vms == null ? [] : [
    for vm in var.vms : join(":", compact([
      vm.name,
      join(",", compact([
        vm.agent == null ? "" : "agent=${vm.agent}",
        vm.guest == null ? "" : "guest=${vm.guest}",
      ])),
    ]))
  ]
  up_args = concat(
    ["up", "--lab", var.lab_name],
    var.scenario == null ? [] : ["--scenario", var.scenario],
    flatten([for option in local.vm_options : ["--vm", option]]),
  )

  commands = {
    up     = join(" ", concat([var.snaplab], local.up_args))
    status = "${var.snaplab} status ${var.lab_name} --json"
    env    = "${var.snaplab} env ${var.lab_name} --json"
    down   = "${var.snaplab} down ${var.lab_name} --missing-ok"
  }

  create_script = join("\n", compact([
    "set -e",
    var.time_scale == null ? "" : "export SNAPLAB_TIME_SCALE=${var.time_scale}",
    "mkdir -p ${local.quoted.dir}",
    "rm -f ${local.quoted.owned} ${local.quoted.status} ${local.quoted.env}",
    "${local.commands.status} >/dev/null 2>&1 || touch ${local.quoted.owned}",
    local.commands.up,
    "${local.commands.status} > ${local.quoted.status}",
    "${local.commands.env} > ${local.quoted.env}",
  ]))
  # terraform_data.facts' destroy step, when its state says this configuration made the lab
  # (the files may be gone by then): down, then the mark goes.
  release_script = "${local.commands.down} && rm -f ${local.quoted.owned}"
  # The lab's own destroy step: down only if the mark is still there (facts was never made:
  # the create step failed after `up`), then the files go.
  destroy_script = join("\n", [
    "set -e",
    "if [ -e ${local.quoted.owned} ]; then ${local.commands.down}; fi",
    "rm -f ${local.quoted.owned} ${local.quoted.status} ${local.quoted.env}",
  ])
}

resource "terraform_data" "lab" {
  # Any change here is another lab: the old one is taken down, the new one brought up.
  triggers_replace = {
    lab_name   = var.lab_name
    scenario   = var.scenario
    vms        = local.vm_options
    time_scale = var.time_scale
  }

  # Everything the destroy step needs (it may read only self), and the commands, so that a
  # plan shows what will run.
  input = {
    lab_name    = var.lab_name
    commands    = local.commands
    create      = local.create_script
    destroy     = local.destroy_script
    release     = local.release_script
    status_file = local.status_file
    env_file    = local.env_file
    owned_file  = local.owned_file
  }

  # The script runs as `sh -c SCRIPT`; `command` (its $1, unused) is the line Terraform
  # names when the step fails: "Error running command 'snaplab up ...': exit status 1.
  # Output: Error: <the CLI's one line>".
  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c", self.input.create, "create"]
    command     = self.input.commands.up
  }

  provisioner "local-exec" {
    when    = destroy
    command = self.input.destroy
  }
}

resource "terraform_data" "facts" {
  # The paths come from the lab's output, unknown until it is created, so the files are read
  # after `up` wrote them. Later plans find the files gone (or not): ignore_changes keeps
  # what was read, and the facts are read again only when the lab is replaced.
  input = {
    status = jsondecode(fileexists(terraform_data.lab.output.status_file) ? file(terraform_data.lab.output.status_file) : "null")
    env    = jsondecode(fileexists(terraform_data.lab.output.env_file) ? file(terraform_data.lab.output.env_file) : "null")
    # Whether `up` made this lab (no lab of the name was there before): kept in state, so
    # destroy needs no file.
    owned   = fileexists(terraform_data.lab.output.owned_file)
    release = terraform_data.lab.output.release
  }

  # Destroyed before the lab (it depends on it): the lab goes here, then the lab's own
  # destroy step finds no mark and only removes the files.
  provisioner "local-exec" {
    when    = destroy
    command = self.output.owned ? self.output.release : "true"
  }

  lifecycle {
    replace_triggered_by = [terraform_data.lab]
    ignore_changes       = [input]
    postcondition {
      condition     = self.output.status != null && self.output.env != null
      error_message = "The lab's status and env files were not written by the create step."
    }
  }
}
