/**
 * A named, expiring lease: at most one holder at a time, across the cluster (Redis) or within
 * one process (in-process). Whatever must run once per cluster (a bridge) runs while its node
 * holds the lease, renews it every third of the TTL, and releases it when the node drains, so
 * that another node takes over quickly; when the holder dies, the lease expires and another
 * node acquires it.
 *
 * Contract:
 * - `acquire` takes a free (or expired) lease for `holder` for `ttlMs` and resolves true; it
 *   resolves true also when `holder` already holds it (and extends it), false when another
 *   holder does. Holders are opaque strings: make them unique per incarnation (node ID plus a
 *   random part), so that a restarted node never mistakes its predecessor's lease for its own.
 * - `renew` extends the lease by `ttlMs` from now only while `holder` holds it: false (and no
 *   effect) once it expired or another holder took it. A holder that gets false, or cannot
 *   renew before its TTL ran out, must stop what the lease guards.
 * - `release` frees the lease if `holder` holds it (true), and does nothing otherwise (false).
 * - `holder` names the current holder, or null when the lease is free or expired.
 * - After `close`, or while the backend is unreachable, calls reject with
 *   BackendUnavailableError.
 */
export interface Lease {
  acquire(name: string, holder: string, ttlMs: number): Promise<boolean>;
  renew(name: string, holder: string, ttlMs: number): Promise<boolean>;
  release(name: string, holder: string): Promise<boolean>;
  holder(name: string): Promise<string | null>;
  close(): Promise<void>;
}
