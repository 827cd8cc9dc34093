// Topic layout and the access rules, as pure functions so the embedded broker, the external
// broker's ACL file and the tests all speak of the same thing.
//
//   tillpoint/v1/terminals/{terminal id}/req   terminal -> gateway   (the terminal publishes)
//   tillpoint/v1/terminals/{terminal id}/res   gateway -> terminal   (responses, same id)
//   tillpoint/v1/terminals/{terminal id}/evt   gateway -> terminal   (pushed events)
//   tillpoint/v1/terminals/{terminal id}/status terminal -> gateway (retained "online" at connect,
//                                               its MQTT will "offline"; presence.ts)

export const TOPIC_ROOT = 'tillpoint/v1/terminals';
const TERMINAL_ID_RE = /^trm_[0-9a-f]{32}$/;

export const isTerminalId = (s: unknown): s is string => typeof s === 'string' && TERMINAL_ID_RE.test(s);

export const requestTopic = (terminalId: string) => `${TOPIC_ROOT}/${terminalId}/req`;
export const responseTopic = (terminalId: string) => `${TOPIC_ROOT}/${terminalId}/res`;
export const eventTopic = (terminalId: string) => `${TOPIC_ROOT}/${terminalId}/evt`;
export const statusTopic = (terminalId: string) => `${TOPIC_ROOT}/${terminalId}/status`;

/** The filter the gateway consumes requests with; on an external broker, inside `$share/<group>/`. */
export const REQUEST_FILTER = `${TOPIC_ROOT}/+/req`;
export const sharedRequestFilter = (group: string) => `$share/${group}/${REQUEST_FILTER}`;

/** The filter the gateway consumes status messages (and wills) with, shared like the requests'. */
export const STATUS_FILTER = `${TOPIC_ROOT}/+/status`;
export const sharedStatusFilter = (group: string) => `$share/${group}/${STATUS_FILTER}`;

function terminalOfTopic(topic: string, leaf: string): string | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}/${parts[2]}` !== TOPIC_ROOT || parts[4] !== leaf) return undefined;
  return isTerminalId(parts[3]) ? parts[3] : undefined;
}

/** The terminal id a request topic belongs to, or undefined if `topic` is not a request topic. */
export const terminalOfRequestTopic = (topic: string) => terminalOfTopic(topic, 'req');
/** The terminal id a status topic belongs to, or undefined if `topic` is not a status topic. */
export const terminalOfStatusTopic = (topic: string) => terminalOfTopic(topic, 'status');

/** A terminal may publish to its own request and status topics and nowhere else. */
export const mayPublish = (terminalId: string, topic: string) =>
  topic === requestTopic(terminalId) || topic === statusTopic(terminalId);

/** A terminal may subscribe to exactly its own response and event topics: no wildcards, no one else's. */
export const maySubscribe = (terminalId: string, filter: string) =>
  filter === responseTopic(terminalId) || filter === eventTopic(terminalId);

/** Defence in depth: the broker forwards a message to a terminal only on that terminal's own topics. */
export const mayReceive = (terminalId: string, topic: string) =>
  topic === responseTopic(terminalId) || topic === eventTopic(terminalId);
