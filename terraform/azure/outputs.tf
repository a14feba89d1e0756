output "resource_group" {
  description = "The drill's resource group."
  value       = azurerm_resource_group.drill.name
}

output "vm_id" {
  description = "The VM's resource id."
  value       = azurerm_linux_virtual_machine.vm.id
}

output "vm_name" {
  description = "The VM's name (also the vault's container and item name for az backup)."
  value       = azurerm_linux_virtual_machine.vm.name
}

output "private_ip" {
  description = "The VM's private address (no public IP: use Azure Bastion, the serial console or Run Command)."
  value       = azurerm_linux_virtual_machine.vm.private_ip_address
}

output "vault" {
  description = "The Recovery Services vault."
  value       = azurerm_recovery_services_vault.drill.name
}

output "policy" {
  description = "The VM backup policy protecting the VM."
  value       = azurerm_backup_policy_vm.daily.name
}

output "scenario" {
  description = "The scenario built (null: a healthy VM)."
  value       = module.scenario.scenario
}

output "symptom" {
  description = "The job error to expect (code and Azure's message, from the scenario file), whether it holds on Azure's clock, and notes on the outcome on Azure."
  value       = module.scenario.symptom
}

output "inject_at" {
  description = "When the scenario's guest changes apply: \"boot\" (already done by cloud-init) or \"run-command\" (run run_command_script, see next_steps)."
  value       = module.scenario.inject_at
}

output "run_command_script" {
  description = "For inject_at = \"run-command\": the script to run with Run Command (RunShellScript); null otherwise."
  value       = module.scenario.run_command_script
}

output "next_steps" {
  description = "The commands a trainer runs next, with this drill's names filled in."
  value = join("\n", compact([
    module.scenario.warmup_backup ? "# 1. A first backup must complete (it installs the VMSnapshot extension):" : "",
    module.scenario.warmup_backup ? "az backup protection backup-now -g ${azurerm_resource_group.drill.name} -v ${azurerm_recovery_services_vault.drill.name} -c ${local.vm_name} -i ${local.vm_name} --backup-management-type AzureIaasVM --workload-type VM" : "",
    module.scenario.inject_at == "run-command" ? "# Apply the fault (it takes effect 60 s after Run Command returns):" : "",
    module.scenario.inject_at == "run-command" ? "terraform output -raw run_command_script > drill.sh && az vm run-command invoke -g ${azurerm_resource_group.drill.name} -n ${local.vm_name} --command-id RunShellScript --scripts @drill.sh" : "",
    "# Back the VM up and watch the job:",
    "az backup protection backup-now -g ${azurerm_resource_group.drill.name} -v ${azurerm_recovery_services_vault.drill.name} -c ${local.vm_name} -i ${local.vm_name} --backup-management-type AzureIaasVM --workload-type VM",
    "az backup job list -g ${azurerm_resource_group.drill.name} -v ${azurerm_recovery_services_vault.drill.name} -o table",
    try("# Expected: the job fails with ${module.scenario.symptom.code} (${module.scenario.symptom.message}).", "# Expected: the job completes."),
  ]))
}
