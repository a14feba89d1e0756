# Inputs of the real-Azure drill. The scenario, its params, proxy_url, allow_lab_only
# and inject_at go to the scenario submodule, which validates them against the lab's
# catalog; everything pasted into a name or a script is validated here or there.

variable "scenario" {
  description = "A scenario id of the lab's catalog that this module can build on Azure (see README.md), or null for a healthy VM."
  type        = string
  default     = null
}

variable "params" {
  description = "Overrides of the scenario's fault parameters (see modules/scenario)."
  type        = any
  default     = {}
  nullable    = false
}

variable "proxy_url" {
  description = "blocked-egress-proxy only: the organisation's HTTP proxy (http://host:port/), which must exist and reach Azure Storage."
  type        = string
  default     = null
}

variable "allow_lab_only" {
  description = "Build a scenario whose failure holds only on the lab's faster clock (cpu-saturation)."
  type        = bool
  default     = false
  nullable    = false
}

variable "inject_at" {
  description = "\"boot\" or \"run-command\" (null: the scenario's own choice, see README.md)."
  type        = string
  default     = null
}

variable "subscription_id" {
  description = "The subscription to build in; null: ARM_SUBSCRIPTION_ID or the Azure CLI's."
  type        = string
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", coalesce(var.subscription_id, "-")))
    error_message = "subscription_id: must be a subscription GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource's name (resource group <prefix>-rg, VM <prefix>-vm, vault <prefix>-vault, ...)."
  type        = string
  default     = "snapdrill"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-32 lowercase letters, digits and '-', starting with a letter and not ending with '-'."
  }
}

variable "location" {
  description = "The Azure region (e.g. westeurope)."
  type        = string
  default     = "westeurope"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,30}$", var.location))
    error_message = "location: an Azure region name in lowercase, without spaces (e.g. westeurope)."
  }
}

variable "image" {
  description = "The marketplace image: \"ubuntu-22.04\" (Canonical) or \"debian-12\" (Debian)."
  type        = string
  default     = "ubuntu-22.04"

  validation {
    condition     = contains(["ubuntu-22.04", "debian-12"], var.image)
    error_message = "image: \"ubuntu-22.04\" or \"debian-12\"."
  }
}

variable "vm_size" {
  description = "The VM size; the lab's guests are Standard_B1s (1 vCPU, 1 GiB), which memory-pressure's outcome assumes."
  type        = string
  default     = "Standard_B1s"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]{2,40}$", var.vm_size))
    error_message = "vm_size: an Azure VM size such as Standard_B1s."
  }
}

variable "admin_username" {
  description = "The VM's admin user (SSH key login only)."
  type        = string
  default     = "azureuser"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["root", "admin", "administrator"], var.admin_username)
    error_message = "admin_username: 1-32 lowercase letters, digits, '_' and '-', not root, admin or administrator."
  }
}

variable "ssh_public_key" {
  description = "The admin's SSH public key (one line, OpenSSH format; Azure takes ssh-rsa and ssh-ed25519)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519) [A-Za-z0-9+/=]{60,}( .*)?$", trimspace(var.ssh_public_key)))
    error_message = "ssh_public_key: one OpenSSH public key line starting with ssh-rsa or ssh-ed25519."
  }
}

variable "address_space" {
  description = "The VNet's address space; the VM's subnet is its first /24."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.address_space, 24 - tonumber(split("/", var.address_space)[1]), 0))
    error_message = "address_space: an IPv4 CIDR of /24 or wider, e.g. 10.42.0.0/16."
  }
}

variable "backup_time" {
  description = "The policy's daily backup time (UTC, on the hour or half hour)."
  type        = string
  default     = "23:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):(00|30)$", var.backup_time))
    error_message = "backup_time: HH:00 or HH:30 (UTC), e.g. 23:00."
  }
}

variable "retention_days" {
  description = "How many daily recovery points the policy keeps (7-9999)."
  type        = number
  default     = 7

  validation {
    condition     = floor(var.retention_days) == var.retention_days && var.retention_days >= 7 && var.retention_days <= 9999
    error_message = "retention_days: a whole number 7-9999."
  }
}

variable "tags" {
  description = "Tags for every resource (a drill tag is always added)."
  type        = map(string)
  default     = {}
  nullable    = false
}
