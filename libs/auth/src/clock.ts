// The clock lives with the token bucket in the broker (its per-client publish rate uses one).
export { systemClock, type Clock } from '@fleetmq/broker';
