// TLS certificates read from files and reloaded when the files change, without a restart: the
// gRPC port (through @grpc/grpc-js's certificate-provider credentials) and the REST port (Node's
// `tls.Server.setSecureContext`). Kubernetes updates a mounted Secret by swapping a `..data`
// symlink in the mount's folder, and cert-manager renews certificates that way, so the folders of
// the files are watched, with a slow poll for file systems that report no events.
import { X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '@cairn/common';

/** PEM contents: a certificate chain, its key and, for mutual TLS, the CA client certificates must chain to. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | null;
}

/** Where the PEM files are. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | undefined;
}

/** Why these PEM contents cannot serve TLS (say, a key that does not match the certificate), or undefined when they can. */
export function tlsMaterialProblem(material: TlsMaterial): string | undefined {
  try {
    new X509Certificate(material.cert);
  } catch {
    return 'the certificate file holds no PEM certificate';
  }
  try {
    createSecureContext({ cert: material.cert, key: material.key, ...(material.clientCa ? { ca: material.clientCa } : {}) });
  } catch (error) {
    const code = (error as { code?: string }).code;
    return /mismatch/i.test((error as Error).message)
      ? 'the key does not belong to the certificate'
      : `the certificate, key or CA cannot be used (${code ?? 'invalid PEM'})`;
  }
  return undefined;
}

/** What is logged about a certificate: never the key, only the certificate's public facts. */
function describe(cert: Buffer): { subject: string; notAfter: string; fingerprint256: string } {
  const x509 = new X509Certificate(cert);
  return { subject: x509.subject, notAfter: new Date(x509.validTo).toISOString(), fingerprint256: x509.fingerprint256 };
}

/**
 * Watches a certificate's files and hands each new, usable set to its listeners. A set that cannot
 * serve (half-written, or a key that does not match the certificate) is logged and skipped: the
 * last good one stays in use, and the next change is tried again.
 */
export class TlsFileWatcher {
  readonly #name: string;
  readonly #files: TlsFiles;
  readonly #logger: Logger;
  readonly #pollMs: number;
  readonly #listeners = new Set<(material: TlsMaterial) => void>();
  #current: TlsMaterial;
  #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;
  #pending: NodeJS.Timeout | undefined;
  #lastProblem: string | undefined;

  constructor(name: string, files: TlsFiles, initial: TlsMaterial, logger: Logger, pollMs = 60_000) {
    this.#name = name;
    this.#files = files;
    this.#current = initial;
    this.#logger = logger;
    this.#pollMs = pollMs;
  }

  get current(): TlsMaterial {
    return this.#current;
  }

  onChange(listener: (material: TlsMaterial) => void): void {
    this.#listeners.add(listener);
  }

  start(): void {
    const folders = new Set([this.#files.certFile, this.#files.keyFile, ...(this.#files.caFile ? [this.#files.caFile] : [])].map(dirname));
    for (const folder of folders) {
      try {
        const watcher = watch(folder, { persistent: false }, () => this.#soon());
        watcher.on('error', (err) =>
          this.#logger.warn({ err, folder }, `${this.#name}: cannot watch the certificate folder; polling only`),
        );
        this.#watchers.push(watcher);
      } catch (err) {
        this.#logger.warn({ err, folder }, `${this.#name}: cannot watch the certificate folder; polling only`);
      }
    }
    this.#poll = setInterval(() => this.check(), this.#pollMs);
    this.#poll.unref();
  }

  close(): void {
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
    clearInterval(this.#poll);
    clearTimeout(this.#pending);
  }

  /** One swap is several events (each file, each symlink): read once they have settled. */
  #soon(): void {
    if (this.#pending !== undefined) return;
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.check();
    }, 100);
    this.#pending.unref();
  }

  /** Reads the files; a changed, usable set replaces the current one. */
  check(): void {
    let next: TlsMaterial;
    try {
      next = {
        cert: readFileSync(this.#files.certFile),
        key: readFileSync(this.#files.keyFile),
        clientCa: this.#files.caFile ? readFileSync(this.#files.caFile) : null,
      };
    } catch (error) {
      this.#skip(`cannot read ${(error as NodeJS.ErrnoException).path ?? 'a file'} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return;
    }
    const current = this.#current;
    const same = (a: Buffer | null, b: Buffer | null) => (a === null || b === null ? a === b : a.equals(b));
    if (same(next.cert, current.cert) && same(next.key, current.key) && same(next.clientCa, current.clientCa)) return;
    const problem = tlsMaterialProblem(next);
    if (problem !== undefined) {
      this.#skip(problem);
      return;
    }
    this.#current = next;
    this.#lastProblem = undefined;
    this.#logger.info({ ...describe(next.cert), clientCa: next.clientCa !== null }, `${this.#name}: TLS certificate reloaded`);
    for (const listener of this.#listeners) listener(next);
  }

  #skip(problem: string): void {
    if (problem === this.#lastProblem) return;
    this.#lastProblem = problem;
    this.#logger.warn({ problem }, `${this.#name}: the changed TLS files were not loaded; the previous certificate stays in use`);
  }
}

/**
 * A grpc-js certificate provider fed by a {@link TlsFileWatcher}: the server's identity and, for
 * mutual TLS, the client CA. Listeners hear the current material on the next turn (grpc-js adds
 * its own watcher right after subscribing) and each reload after that.
 */
export function grpcCertificateProvider(watcher: TlsFileWatcher): grpc.experimental.CertificateProvider {
  const identity = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  const ca = new Set<grpc.experimental.CaCertificateUpdateListener>();
  const identityOf = (m: TlsMaterial) => ({ certificate: m.cert, privateKey: m.key });
  const caOf = (m: TlsMaterial) => (m.clientCa === null ? null : { caCertificate: m.clientCa });
  watcher.onChange((m) => {
    for (const listener of ca) listener(caOf(m));
    for (const listener of identity) listener(identityOf(m));
  });
  return {
    addIdentityCertificateListener(listener) {
      identity.add(listener);
      setImmediate(() => {
        if (identity.has(listener)) listener(identityOf(watcher.current));
      });
    },
    removeIdentityCertificateListener(listener) {
      identity.delete(listener);
    },
    addCaCertificateListener(listener) {
      ca.add(listener);
      setImmediate(() => {
        if (ca.has(listener)) listener(caOf(watcher.current));
      });
    },
    removeCaCertificateListener(listener) {
      ca.delete(listener);
    },
  };
}
