/** Milliseconds since the epoch; injectable so that tests drive time by hand. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
