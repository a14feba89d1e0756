# Needs Docker and the lab's images (a real lab comes up and goes): run by
# tests/integration/test_terraform_local.py as
#   terraform test -test-directory=tests/lab -var snaplab=<path> -var lab_name=<name>
# which then checks that no labelled Docker object, firewall rule or state folder is left.

run "healthy_lab_gives_its_outputs" {
  command = apply

  assert {
    condition     = output.lab_name == var.lab_name
    error_message = "lab_name is the lab's own name."
  }
  assert {
    condition     = output.vms["vm1"].agent_version == "2.7.3.0" && output.vms["vm1"].agent_status == "Ready"
    error_message = "The default VM's agent reports Ready with snaplab's default version."
  }
  assert {
    condition     = startswith(output.arm_endpoint, "https://")
    error_message = "The ARM endpoint is an https URL."
  }
  assert {
    condition     = output.resource_group != "" && output.subscription_id != ""
    error_message = "The resource group and subscription are known."
  }
  assert {
    condition     = strcontains(output.exports, "export IDENTITY_HEADER=")
    error_message = "The exports carry the lab's identity for DefaultAzureCredential."
  }
}
