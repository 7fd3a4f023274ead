/**
 * A throwaway PKI for TLS tests, made with the system's openssl in os.tmpdir() (never
 * committed): CAs, server and client certificates (good, expired, revoked, by another CA)
 * and a CRL.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const OPENSSL = '/usr/bin/openssl';

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA of the server and of the good client certificates ("Test CA"). */
  readonly ca: string;
  /** localhost / 127.0.0.1, by the CA. */
  readonly server: KeyPair;
  /** The same names with a new key: the rotated certificate. */
  readonly server2: KeyPair;
  /** CN=device-1, O=Fleet, OU=a, OU=b. */
  readonly client: KeyPair;
  /** Valid 2020-01-01 to 2020-01-02. */
  readonly expired: KeyPair;
  /** Revoked in `crl`. */
  readonly revoked: KeyPair;
  /** The CA's CRL, listing `revoked`. */
  readonly crl: string;
  /** Another CA ("Other CA") and a client certificate by it. */
  readonly otherCa: string;
  readonly wrongCa: KeyPair;
  /** SHA-256 fingerprint of a PEM certificate file, as Node prints it. */
  fingerprint(certFile: string): string;
  cleanup(): void;
}

function openssl(cwd: string, args: string[]): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

const CA_CONFIG = `
[ ca ]
default_ca = testca
[ testca ]
database = db/index.txt
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
crlnumber = db/crlnumber
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
rand_serial = yes
preserve = yes
copy_extensions = none
[ anything ]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
[ server_ext ]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[ client_ext ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
`;

/** Makes the CAs, certificates and CRL the TLS tests use (EC P-256, a few tens of ms). */
export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetmq-pki-'));
  const file = (name: string): string => path.join(dir, name);
  fs.mkdirSync(file('db'));
  fs.writeFileSync(file('db/index.txt'), '');
  fs.writeFileSync(file('db/crlnumber'), '1000\n');
  fs.writeFileSync(file('ca.cnf'), CA_CONFIG);
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Test CA']);
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '30', '-subj', '/CN=Other CA']);

  const issue = (name: string, subject: string, ext: string, dates: string[] = ['-days', '30'], config = 'ca.cnf'): KeyPair => {
    openssl(dir, ['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, ['ca', '-batch', '-config', config, '-extensions', ext, '-in', `${name}.csr`, '-out', `${name}.pem`, '-notext', ...dates]);
    return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
  };
  const server = issue('server', '/CN=localhost', 'server_ext');
  const server2 = issue('server2', '/CN=localhost', 'server_ext');
  const client = issue('client', '/CN=device-1/O=Fleet/OU=a/OU=b', 'client_ext');
  const expired = issue('expired', '/CN=expired-device', 'client_ext', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']);
  const revoked = issue('revoked', '/CN=revoked-device', 'client_ext');
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-revoke', 'revoked.pem']);
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem']);

  // the other CA signs with its own config and database
  fs.mkdirSync(file('db-other'));
  fs.writeFileSync(file('db-other/index.txt'), '');
  fs.writeFileSync(
    file('other-ca.cnf'),
    CA_CONFIG.replace(/db\//g, 'db-other/').replace('new_certs_dir = db', 'new_certs_dir = db-other').replace('ca.pem', 'other-ca.pem').replace('ca.key', 'other-ca.key'),
  );
  const wrongCa = issue('wrong-ca', '/CN=device-1', 'client_ext', ['-days', '30'], 'other-ca.cnf');

  return {
    dir,
    ca: file('ca.pem'),
    server,
    server2,
    client,
    expired,
    revoked,
    crl: file('crl.pem'),
    otherCa: file('other-ca.pem'),
    wrongCa,
    fingerprint: (certFile) => new X509Certificate(fs.readFileSync(certFile)).fingerprint256,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
