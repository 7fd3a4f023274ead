import type { Delivery } from '../../src/delivery.js';
import type { Message } from '../../src/message.js';
import type { Session } from '../../src/session.js';
import type { LiveChannel } from '../../src/session-registry.js';
import type { WillMessage } from '../../src/session-snapshot.js';

/** A connected channel as the SessionRegistry sees it: it records what it is delivered. */
export class FakeChannel implements LiveChannel {
  readonly online = true;
  readonly got: Message[] = [];
  session: Session | undefined;
  takenOver = false;
  constructor(readonly clientId: string) {}
  deliver(message: Message, _delivery: Delivery): void {
    this.got.push(message);
  }
  takeover(): { session: Session; will: WillMessage | undefined } {
    this.takenOver = true;
    const session = this.session!;
    const w = session.will;
    session.will = undefined;
    return { session, will: w };
  }
}
