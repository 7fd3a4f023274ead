import { parseSharedFilter, topicMatches, type QoS } from '@fleetmq/protocol';
import type { Message } from './message.js';
import type { SubscriptionOptions } from './subscription.js';

/** How one message goes to one client: the result of all its matching subscriptions. */
export interface Delivery {
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
}

/**
 * What a session remembers to deliver a message once. The copy a shared subscription
 * (`shared`: its `$share/{group}/{filter}`) sends is a copy of its own, on top of the one
 * the client's ordinary subscriptions get (MQTT 5 section 4.8.2).
 */
export function seenKey(message: Message, shared: string | undefined): string {
  return shared === undefined ? message.id : `${message.id} ${shared}`;
}

/**
 * The deliveries without subscription identifiers, one per (QoS, retain), shared by every
 * client they go to and frozen: a fan-out allocates nothing per subscriber for them.
 */
const PLAIN: readonly Delivery[] = [0, 1, 2, 0, 1, 2].map((qos, i) =>
  Object.freeze({ qos: qos as QoS, retain: i >= 3, subscriptionIds: undefined }),
);

/**
 * Folds one matching subscription into a delivery. Overlapping subscriptions give one
 * delivery with the maximum granted QoS and every subscription identifier
 * [MQTT-3.3.4-2, MQTT-3.3.4-3]; retain is kept if any subscription has Retain As Published.
 * No Local subscriptions skip the publisher's own messages [MQTT-3.8.3-3].
 * Returns the delivery (created or updated), or the input when the subscription does not apply;
 * a delivery may be shared and frozen, so callers use the result and never change it.
 */
export function addMatch(
  delivery: Delivery | undefined,
  options: SubscriptionOptions,
  message: Message,
  clientId: string,
): Delivery | undefined {
  if (options.noLocal && message.publisherId === clientId) return delivery;
  const qos = (options.qos < message.qos ? options.qos : message.qos) as QoS;
  const retain = options.retainAsPublished && message.retain;
  if (delivery === undefined) {
    if (options.subscriptionId === undefined) return PLAIN[retain ? qos + 3 : qos];
    return { qos, retain, subscriptionIds: [options.subscriptionId] };
  }
  if (Object.isFrozen(delivery)) delivery = { qos: delivery.qos, retain: delivery.retain, subscriptionIds: undefined };
  if (qos > delivery.qos) delivery.qos = qos;
  if (retain) delivery.retain = true;
  if (options.subscriptionId !== undefined) {
    (delivery.subscriptionIds ??= []).push(options.subscriptionId);
  }
  return delivery;
}

/** The delivery of a message against a whole subscription map (used when restoring queues). */
export function deliveryFor(
  subscriptions: ReadonlyMap<string, SubscriptionOptions>,
  message: Message,
  clientId: string,
): Delivery | undefined {
  let delivery: Delivery | undefined;
  for (const [filter, options] of subscriptions) {
    const shared = parseSharedFilter(filter);
    const inner = shared === null ? filter : shared === 'invalid' ? undefined : shared.filter;
    if (inner !== undefined && topicMatches(inner, message.topic)) {
      delivery = addMatch(delivery, options, message, clientId);
    }
  }
  return delivery;
}
