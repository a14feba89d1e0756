terraform {
  # The scenario submodule's validations refer to other variables: Terraform 1.9.
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.0"
    }
  }
}

provider "azurerm" {
  # null: the subscription of ARM_SUBSCRIPTION_ID or the Azure CLI's login.
  subscription_id = var.subscription_id

  features {
    recovery_service {
      # Destroy stops protection and deletes the drill's recovery points, so nothing
      # of the drill stays behind (the vault's soft delete is off as well).
      vm_backup_stop_protection_and_retain_data_on_destroy = false
      purge_protected_items_from_vault_on_destroy          = true
    }
  }
}
