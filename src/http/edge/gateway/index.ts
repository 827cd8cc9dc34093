// The WAF gateway (nginx + ModSecurity v3 + OWASP CRS) that `tillpoint gateway start` runs.
export { startGateway, gatewayUrl, type RunningGateway, type StartGatewayOptions } from './supervisor.ts';
export { renderGatewayConfig, GATEWAY_DEFAULTS, GATEWAY_FILES, TEMPLATE_DIR, type GatewaySettings } from './render.ts';
export {
  locatePrerequisites,
  GatewayPrerequisiteError,
  DEBIAN_PACKAGES,
  INSTALL_HINT,
  type GatewayPrerequisites,
} from './prerequisites.ts';
