# AWS IoT Core as the terminals' MQTT broker: the terminal CA (`tillpoint pki init`) registered so
# terminals connect with the client certificates Tillpoint issues (just-in-time registration),
# and a policy that confines each thing to its own topics, as the Mosquitto ACL does
# (src/modules/terminals/mosquitto.ts): a terminal publishes only to tillpoint/v1/terminals/<its id>/req and
# subscribes only to tillpoint/v1/terminals/<its id>/res and tillpoint/v1/terminals/<its id>/evt. The gateway's identity may use the
# shared subscription to every terminal's requests and publish answers.

variable "name" { type = string }
variable "terminal_ca_pem" {
  description = "The terminal CA certificate (public part of `tillpoint pki init`)."
  type        = string
}
variable "verification_cert_pem" {
  description = "The CA's proof of possession: a certificate for IoT's registration code, signed by the terminal CA."
  type        = string
}
variable "gateway_cert_pem" {
  description = "The terminal gateway's client certificate (`tillpoint pki gateway-cert`)."
  type        = string
}
variable "share_group" {
  type    = string
  default = "tillpoint"
}
variable "tags" {
  type    = map(string)
  default = {}
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  arn = "arn:aws:iot:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
}

resource "aws_iot_ca_certificate" "terminals" {
  active                       = true
  allow_auto_registration      = true
  ca_certificate_pem           = var.terminal_ca_pem
  verification_certificate_pem = var.verification_cert_pem
  certificate_mode             = "DEFAULT"
  tags                         = var.tags
}

# ${iot:Connection.Thing.ThingName} is the terminal id: the client id, thing name and certificate
# subject agree, so a terminal can use its own topics and no one else's.
resource "aws_iot_policy" "terminal" {
  name = "${var.name}-terminal"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = "iot:Connect", Resource = "${local.arn}:client/$${iot:Connection.Thing.ThingName}", Condition = { Bool = { "iot:Connection.Thing.IsAttached" = "true" } } },
      { Effect = "Allow", Action = "iot:Publish", Resource = "${local.arn}:topic/tillpoint/v1/terminals/$${iot:Connection.Thing.ThingName}/req" },
      { Effect = "Allow", Action = "iot:Subscribe", Resource = ["${local.arn}:topicfilter/tillpoint/v1/terminals/$${iot:Connection.Thing.ThingName}/res", "${local.arn}:topicfilter/tillpoint/v1/terminals/$${iot:Connection.Thing.ThingName}/evt"] },
      { Effect = "Allow", Action = "iot:Receive", Resource = ["${local.arn}:topic/tillpoint/v1/terminals/$${iot:Connection.Thing.ThingName}/res", "${local.arn}:topic/tillpoint/v1/terminals/$${iot:Connection.Thing.ThingName}/evt"] },
    ]
  })
}

resource "aws_iot_policy" "gateway" {
  name = "${var.name}-gateway"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = "iot:Connect", Resource = "${local.arn}:client/tillpoint-gateway-*" },
      { Effect = "Allow", Action = "iot:Subscribe", Resource = "${local.arn}:topicfilter/$share/${var.share_group}/tillpoint/v1/terminals/+/req" },
      { Effect = "Allow", Action = "iot:Receive", Resource = "${local.arn}:topic/tillpoint/v1/terminals/*/req" },
      { Effect = "Allow", Action = "iot:Publish", Resource = ["${local.arn}:topic/tillpoint/v1/terminals/*/res", "${local.arn}:topic/tillpoint/v1/terminals/*/evt"] },
    ]
  })
}

resource "aws_iot_certificate" "gateway" {
  certificate_pem = var.gateway_cert_pem
  ca_pem          = var.terminal_ca_pem
  active          = true
}

resource "aws_iot_policy_attachment" "gateway" {
  policy = aws_iot_policy.gateway.name
  target = aws_iot_certificate.gateway.arn
}

# Connections, subscriptions and denials go to CloudWatch (PCI DSS 10.2).
resource "aws_iot_logging_options" "this" {
  default_log_level = "WARN"
  role_arn          = aws_iam_role.logging.arn
}

resource "aws_iam_role" "logging" {
  name = "${var.name}-iot-logging"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "iot.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy_attachment" "logging" {
  role       = aws_iam_role.logging.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSIoTLogging"
}

data "aws_iot_endpoint" "data" {
  endpoint_type = "iot:Data-ATS"
}

output "mqtt_url" { value = "mqtts://${data.aws_iot_endpoint.data.endpoint_address}:8883" }
output "terminal_policy_name" { value = aws_iot_policy.terminal.name }
