// Terminals: the MQTT gateway, device identity (terminal CA, certificates, development secrets),
// the terminal protocol, the outbox relay, the SDK and the simulator. See README.md.
export type { TerminalGateway, GatewayDeps } from './gateway.ts';
export { registerTerminalRoutes } from './terminals.routes.ts';
export { createOutboxRelay, paymentUpdatedEvent, RELAYED_TOPICS } from './outboxRelay.ts';
export {
  issueMqttSecret,
  verifyMqttSecret,
  verifyClientCertificate,
  recordCertificate,
  revokeTerminalCredentials,
  hashSecret,
  issueDemoTerminalSecrets,
  issueMqttSecretsBatch,
} from './credentials.ts';
export { listCertificates, listRevokedCertificates, listViolations, type ViolationKind } from './terminals.repo.ts';
export * as topics from './topics.ts';
export * as protocol from './protocol/schemas.ts';
/**
 * The gateway (`createTerminalGateway`) loads the MQTT broker (Aedes) or client (mqtt.js) and the
 * protocol's compiled validators; only the roles that run it load it, so the api role does not.
 */
export const loadGateway = () => import('./gateway.ts');
/** Certificate issuance loads @peculiar/x509; only the commands that issue need it, so it loads on demand. */
export const loadPki = () => import('./pki.ts');
export const loadEnrollment = () => import('./enrollment.ts');
export { parseMqtt, type MqttConfig } from './terminals.settings.ts';
export { writeMosquittoConfig, mosquittoAcl } from './mosquitto.ts';
