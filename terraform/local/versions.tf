terraform {
  # 1.9: validation conditions that read locals (the generated catalog) and removed
  # blocks with destroy provisioners. Only built-in providers are used (terraform_data).
  required_version = ">= 1.9"
}
