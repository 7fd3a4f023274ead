/** Item helpers shared by the stores: sizes, TTL values and the layout of a message. */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { decodeMessage, encodeMessage } from '@fleetmq/broker';
import type { Message } from '@fleetmq/broker';
import { MESSAGE_ATTRIBUTES as M } from './tables.js';

export type Item = Record<string, AttributeValue>;

/** DynamoDB's maximum item size. */
export const MAX_ITEM_BYTES = 400 * 1024;

const EMPTY = Buffer.alloc(0);

function utf8(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * DynamoDB item size: attribute name lengths plus value sizes (a number is counted at its
 * maximum of 21 bytes).
 */
export function itemBytes(item: Item): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    size += utf8(name);
    if (value.S !== undefined) size += utf8(value.S);
    else if (value.B !== undefined) size += value.B.byteLength;
    else if (value.N !== undefined) size += 21;
  }
  return size;
}

/**
 * A DynamoDB TTL value (epoch seconds) for an instant in epoch ms, rounded up so that the item
 * is never deleted before that instant.
 */
export function ttlValue(epochMs: number): AttributeValue {
  return { N: String(Math.ceil(epochMs / 1000)) };
}

/**
 * The attributes that hold a message: `topic` (S), `payload` (B, the bytes as they are) and
 * `message` (S, every other field with the broker's encodeMessage codec).
 */
export function messageAttributes(message: Message): Item {
  const rest = encodeMessage({ ...message, topic: '', payload: EMPTY });
  return { [M.topic]: { S: message.topic }, [M.payload]: { B: message.payload }, [M.message]: { S: rest } };
}

/** The message kept by messageAttributes; `what` names the item in the error when one is missing. */
export function messageFromItem(item: Item, what: string): Message {
  const topic = item[M.topic]?.S;
  const payload = item[M.payload]?.B;
  const rest = item[M.message]?.S;
  if (topic === undefined || payload === undefined || rest === undefined) {
    throw new Error(`${what} lacks topic, payload or message`);
  }
  return { ...decodeMessage(rest), topic, payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) };
}
