# Every value here is pasted into a shell command, so each is validated first. The lists
# and patterns come from catalog.tf.json, generated from the lab (python -m lab.terraform_catalog).

variable "lab_name" {
  description = "The lab's name (snaplab's --lab): lowercase letters, digits and '-', starting with a letter, at most 20 characters."
  type        = string
  default     = "tf-lab"
  nullable    = false

  validation {
    condition     = can(regex(local.lab_name_pattern, var.lab_name))
    error_message = "lab_name: lowercase letters, digits and '-', starting with a letter, at most 20 characters."
  }
}

variable "scenario" {
  description = "A scenario id of the failure catalog (scenarios/<id>): the lab comes up broken as it describes. null: a healthy lab of var.vms."
  type        = string
  default     = null

  validation {
    condition     = var.scenario == null ? true : contains(local.scenario_ids, var.scenario)
    error_message = "scenario: not a scenario of the catalog (see scenarios/ or catalog.tf.json)."
  }
}

variable "vms" {
  description = "The healthy lab's VMs: name, agent version (null: snaplab's default) and guest variant (null: the base guest). null: one VM, vm1. A scenario brings its own VMs."
  type = list(object({
    name  = string
    agent = optional(string)
    guest = optional(string)
  }))
  default = null

  validation {
    condition     = var.vms == null ? true : alltrue([for vm in var.vms : can(regex(local.vm_name_pattern, vm.name))])
    error_message = "vms: a VM name is lowercase letters, digits and '-', starting with a letter, at most 15 characters."
  }
  validation {
    condition     = var.vms == null ? true : alltrue([for vm in var.vms : vm.agent == null ? true : contains(local.agent_versions, vm.agent)])
    error_message = "vms: unknown agent version (see agent_versions in catalog.tf.json)."
  }
  validation {
    condition     = var.vms == null ? true : alltrue([for vm in var.vms : vm.guest == null ? true : contains(local.guest_variants, vm.guest)])
    error_message = "vms: unknown guest variant (see guest_variants in catalog.tf.json)."
  }
  validation {
    condition     = var.vms == null ? true : length(var.vms) >= 1 && length(var.vms) <= local.max_vms && length(distinct([for vm in var.vms : vm.name])) == length(var.vms)
    error_message = "vms: between 1 and ${local.max_vms} VMs, each named once."
  }
  validation {
    condition     = var.vms == null || var.scenario == null
    error_message = "vms: a scenario brings its own VMs; give scenario or vms, not both."
  }
}

variable "time_scale" {
  description = "How many times faster than Azure the lab's clock runs (snaplab's SNAPLAB_TIME_SCALE). null: the caller's SNAPLAB_TIME_SCALE, else 240."
  type        = number
  default     = null

  validation {
    condition     = var.time_scale == null ? true : var.time_scale > 0
    error_message = "time_scale: a number above 0."
  }
}

variable "snaplab" {
  description = "The snaplab CLI: a command on PATH or a path (letters, digits, '.', '_', '+', '-', '/')."
  type        = string
  default     = "snaplab"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_./+-]+$", var.snaplab))
    error_message = "snaplab: a command name or path of letters, digits, '.', '_', '+', '-' and '/' only."
  }
}
