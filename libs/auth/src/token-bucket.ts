// The token bucket lives in the broker, which uses one per client for the publish rate
// (the broker cannot depend on this package); re-exported here with the other limit primitives.
export { TokenBucket, type TokenBucketOptions } from '@fleetmq/broker';
