// The local stack listens on stable ports, so the CLI profile and a worker started by hand keep
// working across restarts. Before anything starts, each port is checked; a taken one is a clear
// error naming the port, the process that holds it when this machine tells us, and how to pick
// another.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { CairnError, ErrorCodes } from '@cairn/common';

/** The ports of the local stack. 0 picks a free port at each start. */
export interface DevPorts {
  readonly postgres: number;
  readonly controlPlaneHttp: number;
  readonly controlPlaneGrpc: number;
  readonly gateway: number;
  readonly modelServer: number;
}

/** The stable defaults (documented in apps/cli/README.md). */
export const DEFAULT_PORTS: DevPorts = Object.freeze({
  postgres: 7432,
  controlPlaneHttp: 7280,
  controlPlaneGrpc: 7233,
  gateway: 7281,
  modelServer: 7282,
});

/** For each port: what it serves, and how to choose another one. */
export const PORT_SETTINGS: Readonly<Record<keyof DevPorts, { what: string; flag: string; env: string }>> = {
  postgres: { what: 'Postgres', flag: '--pg-port', env: 'CAIRN_DEV_PG_PORT' },
  controlPlaneHttp: { what: 'control-plane HTTP', flag: '--cp-http-port', env: 'CAIRN_DEV_CP_HTTP_PORT' },
  controlPlaneGrpc: { what: 'control-plane gRPC', flag: '--cp-grpc-port', env: 'CAIRN_DEV_CP_GRPC_PORT' },
  gateway: { what: 'gateway', flag: '--gateway-port', env: 'CAIRN_DEV_GATEWAY_PORT' },
  modelServer: { what: 'local model server', flag: '--model-port', env: 'CAIRN_DEV_MODEL_PORT' },
};

/** Whether something already listens on 127.0.0.1:`port` (or on every address at that port). */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(true);
      else reject(err);
    });
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/**
 * The process listening on a TCP port, from /proc on Linux: the socket's inode in /proc/net/tcp*,
 * then the process holding a descriptor to it. Undefined when this machine does not say (another
 * OS, or a process of another user).
 */
export function portHolder(port: number): { pid: number; command: string } | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      // State 0A is LISTEN.
      if (!local || cols[3] !== '0A') continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && cols[9]) inodes.add(cols[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) {
        let command = '';
        try {
          command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
        } catch {
          // The process ended meanwhile.
        }
        return { pid: Number(pid), command: command.length > 160 ? `${command.slice(0, 157)}…` : command };
      }
    }
  }
  return undefined;
}

/**
 * Fails with one CAIRN-1131 error listing every configured port (non-zero) that is taken, with
 * what holds it and how to choose others. `skip` leaves out ports the stack will not use.
 */
export async function checkPorts(ports: DevPorts, skip: ReadonlyArray<keyof DevPorts> = []): Promise<void> {
  const taken: string[] = [];
  const keys = (Object.keys(PORT_SETTINGS) as Array<keyof DevPorts>).filter((k) => !skip.includes(k) && ports[k] > 0);
  const seen = new Map<number, keyof DevPorts>();
  for (const key of keys) {
    const other = seen.get(ports[key]);
    if (other) {
      throw new CairnError(
        ErrorCodes.DEV_CONFIG_INVALID,
        `The ${PORT_SETTINGS[key].what} and the ${PORT_SETTINGS[other].what} are both set to port ${ports[key]}: give each its own port (${PORT_SETTINGS[key].flag}, ${PORT_SETTINGS[other].flag}).`,
      );
    }
    seen.set(ports[key], key);
  }
  for (const key of keys) {
    const port = ports[key];
    if (!(await portInUse(port))) continue;
    const holder = portHolder(port);
    const s = PORT_SETTINGS[key];
    taken.push(
      `  port ${port} (${s.what}) is in use${holder ? ` by pid ${holder.pid}${holder.command ? ` (${holder.command})` : ''}` : ' (this machine does not say by which process)'}: ` +
        `choose another with ${s.flag} N or ${s.env}=N`,
    );
  }
  if (taken.length > 0) {
    throw new CairnError(
      ErrorCodes.PORT_IN_USE,
      `The local stack cannot listen on ${taken.length === 1 ? 'a port it needs' : 'ports it needs'}:\n${taken.join('\n')}\n` +
        'Stop what holds the port (another `cairn dev` of this or another project?), or choose other ports: by flag, environment ' +
        'variable, or "dev": { "ports": { … } } in cairn.config.json (0 picks a free port at each start).',
    );
  }
}
