# One drill on a real subscription: a resource group with a VNet, an NSG, a NIC, a
# Linux VM from a marketplace image with the scenario's cloud-init, a data disk, and a
# Recovery Services vault with a daily VM backup policy protecting the VM. The failure
# comes from modules/scenario (provider-free, tested offline); this file only places it:
# the NSG rules in the VM's NSG, the cloud-init in the VM's custom_data.

module "scenario" {
  source = "./modules/scenario"

  scenario       = var.scenario
  params         = var.params
  proxy_url      = var.proxy_url
  allow_lab_only = var.allow_lab_only
  inject_at      = var.inject_at
}

locals {
  tags = merge(var.tags, { "snaplab-drill" = coalesce(var.scenario, "healthy") })

  images = {
    "ubuntu-22.04" = { publisher = "Canonical", offer = "0001-com-ubuntu-server-jammy", sku = "22_04-lts-gen2" }
    "debian-12"    = { publisher = "Debian", offer = "debian-12", sku = "12-gen2" }
  }
  image = local.images[var.image]

  vm_name = "${var.name_prefix}-vm"
}

resource "azurerm_resource_group" "drill" {
  name     = "${var.name_prefix}-rg"
  location = var.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "drill" {
  name                = "${var.name_prefix}-vnet"
  location            = azurerm_resource_group.drill.location
  resource_group_name = azurerm_resource_group.drill.name
  address_space       = [var.address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "vm" {
  name                 = "default"
  resource_group_name  = azurerm_resource_group.drill.name
  virtual_network_name = azurerm_virtual_network.drill.name
  address_prefixes     = [cidrsubnet(var.address_space, 24 - tonumber(split("/", var.address_space)[1]), 0)]

  # The VM has no public IP: it reaches storage and the package mirrors through
  # Azure's default outbound access, which newer VNets no longer turn on by themselves.
  default_outbound_access_enabled = true
}

resource "azurerm_network_security_group" "vm" {
  name                = "${local.vm_name}-nsg"
  location            = azurerm_resource_group.drill.location
  resource_group_name = azurerm_resource_group.drill.name
  tags                = local.tags
}

# The scenario's rules (e.g. blocked-egress's outbound Deny to the Storage tag).
resource "azurerm_network_security_rule" "scenario" {
  for_each = { for rule in module.scenario.nsg_rules : rule.name => rule }

  name                        = each.value.name
  priority                    = each.value.priority
  direction                   = each.value.direction
  access                      = each.value.access
  protocol                    = each.value.protocol
  source_address_prefix       = each.value.source_address_prefix
  source_port_range           = each.value.source_port_range
  destination_address_prefix  = each.value.destination_address_prefix
  destination_port_range      = each.value.destination_port_range
  resource_group_name         = azurerm_resource_group.drill.name
  network_security_group_name = azurerm_network_security_group.vm.name
}

resource "azurerm_network_interface" "vm" {
  name                = "${local.vm_name}-nic"
  location            = azurerm_resource_group.drill.location
  resource_group_name = azurerm_resource_group.drill.name
  tags                = local.tags

  ip_configuration {
    name                          = "ipconfig1"
    subnet_id                     = azurerm_subnet.vm.id
    private_ip_address_allocation = "Dynamic"
  }
}

resource "azurerm_network_interface_security_group_association" "vm" {
  network_interface_id      = azurerm_network_interface.vm.id
  network_security_group_id = azurerm_network_security_group.vm.id
}

resource "azurerm_linux_virtual_machine" "vm" {
  name                            = local.vm_name
  location                        = azurerm_resource_group.drill.location
  resource_group_name             = azurerm_resource_group.drill.name
  size                            = var.vm_size
  admin_username                  = var.admin_username
  disable_password_authentication = true
  network_interface_ids           = [azurerm_network_interface.vm.id]
  provision_vm_agent              = true
  allow_extension_operations      = true
  custom_data                     = base64encode(module.scenario.cloud_init)
  tags                            = local.tags

  admin_ssh_key {
    username   = var.admin_username
    public_key = trimspace(var.ssh_public_key)
  }

  os_disk {
    name                 = "${local.vm_name}-osdisk"
    caching              = "ReadWrite"
    storage_account_type = "Standard_LRS"
  }

  source_image_reference {
    publisher = local.image.publisher
    offer     = local.image.offer
    sku       = local.image.sku
    version   = "latest"
  }

  # The serial console (managed boot diagnostics storage): a way in when the agent,
  # the network or SSH is what the drill broke.
  boot_diagnostics {}

  # The NSG's rules are in place before the OS boots and its cloud-init runs.
  depends_on = [azurerm_network_interface_security_group_association.vm, azurerm_network_security_rule.scenario]
}

# A data disk: Azure backs a single-disk VM up crash-consistent when its pre-script
# fails, whatever continueBackupOnFailure says; with two disks prescript-hang fails as
# the scenario expects.
resource "azurerm_managed_disk" "data" {
  name                 = "${local.vm_name}-data0"
  location             = azurerm_resource_group.drill.location
  resource_group_name  = azurerm_resource_group.drill.name
  storage_account_type = "Standard_LRS"
  create_option        = "Empty"
  disk_size_gb         = 4
  tags                 = local.tags
}

resource "azurerm_virtual_machine_data_disk_attachment" "data" {
  managed_disk_id    = azurerm_managed_disk.data.id
  virtual_machine_id = azurerm_linux_virtual_machine.vm.id
  lun                = 0
  caching            = "ReadWrite"
}

resource "azurerm_recovery_services_vault" "drill" {
  name                = "${var.name_prefix}-vault"
  location            = azurerm_resource_group.drill.location
  resource_group_name = azurerm_resource_group.drill.name
  sku                 = "Standard"
  storage_mode_type   = "LocallyRedundant"
  # Off, so destroy deletes the drill's recovery points instead of keeping them 14 days.
  soft_delete_enabled = false
  tags                = local.tags
}

resource "azurerm_backup_policy_vm" "daily" {
  name                = "${var.name_prefix}-daily"
  resource_group_name = azurerm_resource_group.drill.name
  recovery_vault_name = azurerm_recovery_services_vault.drill.name
  timezone            = "UTC"

  backup {
    frequency = "Daily"
    time      = var.backup_time
  }

  retention_daily {
    count = var.retention_days
  }
}

resource "azurerm_backup_protected_vm" "vm" {
  resource_group_name = azurerm_resource_group.drill.name
  recovery_vault_name = azurerm_recovery_services_vault.drill.name
  source_vm_id        = azurerm_linux_virtual_machine.vm.id
  backup_policy_id    = azurerm_backup_policy_vm.daily.id

  # Protect the VM with its data disk attached, so backups include it.
  depends_on = [azurerm_virtual_machine_data_disk_attachment.data]
}
