// The simbank wire format lives with its connector (connectors/simbank/wire.ts); the simulator
// speaks it from there, so the two cannot drift apart.
export * from '../connectors/simbank/wire.ts';
