# Inputs of the scenario submodule. The scenario ids, expected job errors and fault
# parameters come from scenarios.json, generated from the lab's scenario files
# (python -m lab.terraform_catalog); nothing about a scenario is typed here.

variable "scenario" {
  description = "A scenario id of the lab's catalog (scenarios/<id>), or null for a healthy VM."
  type        = string
  default     = null

  validation {
    condition     = var.scenario == null || contains(keys(local.catalog), coalesce(var.scenario, "-"))
    error_message = "scenario: ${jsonencode(var.scenario)} is not a scenario of the catalog (known: ${join(", ", sort(keys(local.catalog)))})."
  }

  validation {
    condition     = var.scenario == null || lookup(local.refusals, coalesce(var.scenario, "-"), null) == null
    error_message = "scenario: ${jsonencode(var.scenario)} cannot be built on a real Azure VM: ${coalesce(lookup(local.refusals, coalesce(var.scenario, "-"), null), "-")}."
  }
}

variable "allow_lab_only" {
  description = "Build a scenario whose failure holds only on the lab's faster clock (fidelity.azure_clock: lab-only); its symptom output then says Azure may not show the error."
  type        = bool
  default     = false
  nullable    = false
}

variable "inject_at" {
  description = "When the fault is applied in the guest: \"boot\" (cloud-init, first boot) or \"run-command\" (the trainer runs the run_command_script output with Run Command; the fault applies a minute later). null: \"run-command\" for scenarios that need a completed backup first (warmup_backup), else \"boot\"."
  type        = string
  default     = null

  validation {
    condition     = var.inject_at == null || contains(["boot", "run-command"], coalesce(var.inject_at, "-"))
    error_message = "inject_at: must be \"boot\" or \"run-command\" (or null), got ${jsonencode(var.inject_at)}."
  }

  validation {
    condition     = !(var.inject_at == "boot" && local.warmup)
    error_message = "inject_at: ${jsonencode(var.scenario)} needs one completed backup before the fault (warmup_backup), so it cannot be applied at boot; use \"run-command\" (or null)."
  }
}

variable "params" {
  description = "Overrides of the scenario's fault parameters (names as in the scenario file: name, priority, workers, headroom_mib, timeout_seconds, continue_on_failure)."
  type        = any
  default     = {}
  nullable    = false

  validation {
    condition     = can(keys(var.params)) && length(setsubtract(keys(var.params), keys(local.param_rules))) == 0
    error_message = "params: a map whose keys are among ${join(", ", sort(keys(local.param_rules)))}."
  }

  validation {
    condition = alltrue([
      try(length(regexall("^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$", var.params.name)) > 0, !contains(keys(var.params), "name")),
      try(floor(var.params.priority) == var.params.priority && var.params.priority >= 100 && var.params.priority <= 4096, !contains(keys(var.params), "priority")),
      try(floor(var.params.workers) == var.params.workers && var.params.workers >= 1 && var.params.workers <= 256, !contains(keys(var.params), "workers")),
      try(length(regexall("^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$", var.params.unit)) > 0, !contains(keys(var.params), "unit")),
      try(floor(var.params.headroom_mib) == var.params.headroom_mib && var.params.headroom_mib >= 1 && var.params.headroom_mib <= 65536, !contains(keys(var.params), "headroom_mib")),
      try(floor(var.params.timeout_seconds) == var.params.timeout_seconds && var.params.timeout_seconds >= 1 && var.params.timeout_seconds <= 86400, !contains(keys(var.params), "timeout_seconds")),
      try(tobool(var.params.continue_on_failure) != null, !contains(keys(var.params), "continue_on_failure")),
    ])
    error_message = "params: expected ${join("; ", [for k, rule in local.param_rules : rule if contains(try(keys(var.params), []), k)])}."
  }
}

variable "proxy_url" {
  description = "The organisation's HTTP proxy (http://host:port/) that blocked-egress-proxy writes into /etc/environment; it must exist and reach Azure Storage."
  type        = string
  default     = null

  validation {
    condition     = var.proxy_url == null || can(regex("^http://[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,5}/?$", coalesce(var.proxy_url, "-")))
    error_message = "proxy_url: must look like http://proxy.example.com:3128/ (letters, digits, dots and dashes in the host), got ${jsonencode(var.proxy_url)}."
  }

  validation {
    condition     = !(contains(local.fault_ids, "blocked-egress-proxy") && var.proxy_url == null)
    error_message = "proxy_url: blocked-egress-proxy needs the organisation's HTTP proxy (a proxy the VM reaches that reaches Azure Storage), e.g. proxy_url = \"http://10.0.2.4:3128/\"."
  }
}
