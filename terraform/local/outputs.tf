locals {
  status = terraform_data.facts.output.status
  env    = terraform_data.facts.output.env
}

output "lab_name" {
  description = "The lab's name, as snaplab commands take it (--lab, or the LAB argument)."
  value       = local.status.lab
}

output "vms" {
  description = "Each VM by name: its agent's reported version and status, and its power state, when the lab came up."
  value = {
    for vm in local.status.vms : vm.name => {
      agent_version = vm.agent.version
      agent_status  = vm.agent.status
      power_state   = vm.power_state
    }
  }
}

output "arm_endpoint" {
  description = "The lab's Azure Resource Manager endpoint (the ARM twin), as ARM_ENDPOINT."
  value       = local.env.ARM_ENDPOINT
}

output "resource_group" {
  description = "The resource group holding the lab's VMs, NICs, NSGs and vault."
  value       = local.env.AZURE_RESOURCE_GROUP
}

output "subscription_id" {
  description = "The lab's subscription id."
  value       = local.env.AZURE_SUBSCRIPTION_ID
}

output "env" {
  description = "`snaplab env`'s exports as a map (the identity header is the lab's credential)."
  value       = local.env
  sensitive   = true
}

output "exports" {
  description = "`snaplab env`'s exports as shell lines: eval \"$(terraform output -raw exports)\"."
  value       = join("", [for key in sort(keys(local.env)) : "export ${key}='${replace(local.env[key], "'", "'\\''")}'\n"])
  sensitive   = true
}
