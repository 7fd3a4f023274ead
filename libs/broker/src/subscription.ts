import type { QoS } from '@fleetmq/protocol';

/** What a SUBSCRIBE grants for one topic filter (MQTT 5 3.8.3.1 subscription options). */
export interface SubscriptionOptions {
  /** Granted QoS: the maximum QoS delivered on this subscription. */
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  /** 0: send retained at subscribe; 1: only if the subscription is new; 2: never. */
  readonly retainHandling: 0 | 1 | 2;
  /** MQTT 5 subscription identifier, when the SUBSCRIBE carried one. */
  readonly subscriptionId?: number | undefined;
}
