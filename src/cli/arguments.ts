// Parsers of command-line values (ports, counts, bulletin ids, delivery states): each refuses bad
// input in one sentence, as commander's InvalidArgumentError or a USAGE error.
import { InvalidArgumentError } from 'commander';
import { DELIVERY_STATES, isDeliveryState, type DeliveryState } from '../domain/delivery.js';
import { BulletinError } from '../domain/errors.js';

/** A --port value: 0 (any free port) to 65535. */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return port;
}

export function parsePositive(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return number;
}

export function parseId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id < 1) throw new BulletinError('USAGE', `"${text}" is not a bulletin id (see \`bulletin status\`).`);
  return id;
}

export function parseStates(text: string, alsoAllowed?: string): DeliveryState[] {
  const states = text.split(',').map((state) => state.trim());
  const unknown = states.filter((state) => !isDeliveryState(state));
  if (unknown.length > 0) {
    throw new BulletinError('USAGE', `Unknown state(s) ${unknown.join(', ')}: use ${DELIVERY_STATES.join(', ')}${alsoAllowed ? `, or ${alsoAllowed}` : ''}.`);
  }
  return states as DeliveryState[];
}
