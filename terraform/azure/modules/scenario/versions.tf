terraform {
  # Input validations that refer to other variables and locals need Terraform 1.9.
  required_version = ">= 1.9"
}
