"""Platform checks: what Azure (here the ARM twin through the Azure SDK, the backup
service's jobs and the NSG) says about a VM, read the way an engineer reads a case."""
