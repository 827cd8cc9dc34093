variable "region" {
  type    = string
  default = "ap-south-1"
}
variable "dr_region" {
  type    = string
  default = "ap-south-2"
}
variable "azs" {
  type    = list(string)
  default = ["ap-south-1a", "ap-south-1b", "ap-south-1c"]
}
variable "dr_azs" {
  type    = list(string)
  default = ["ap-south-2a", "ap-south-2b", "ap-south-2c"]
}
variable "vpc_cidr" {
  type    = string
  default = "10.40.0.0/16"
}
variable "dr_vpc_cidr" {
  type    = string
  default = "10.41.0.0/16"
}
variable "api_domain" {
  type    = string
  default = "api.tillpoint.in"
}
variable "route53_zone_id" { type = string }
variable "admin_cidrs" {
  description = "The operators' VPN ranges allowed to reach the EKS API."
  type        = list(string)
}
variable "alarm_emails" { type = list(string) }
variable "terminal_ca_pem" { type = string }
variable "terminal_ca_verification_pem" { type = string }
variable "gateway_cert_pem" { type = string }
