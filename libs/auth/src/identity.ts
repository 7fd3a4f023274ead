import type { ClientIdentity } from '@fleetmq/broker';

// The identity type belongs to the broker, whose Authenticator returns it and whose
// Authorizer and policy limits key on it; this package produces it.
export type { ClaimAcl, ClientIdentity } from '@fleetmq/broker';

/** The broker's ClientIdentity, under the name this package's API has used. */
export type AuthIdentity = ClientIdentity;

export const anonymousIdentity: ClientIdentity = { provider: 'anonymous', username: undefined, groups: [] };
