import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { cleanUpAll } from './cleanup.js';

/** How long a server may take to answer `/healthz` with ok (a cluster elects its meta leader first). */
const readyMsMax = 15_000;
/** After TERM, how long a server may take to exit before it is killed. */
const stopMsMax = 5_000;
/** The port every NATS client tries by default: a test server never takes it, so no test talks to a real one. */
const defaultNatsPort = 4222;

/**
 * The path of `nats-server`, or the reason the tests that need it are skipped. Under CI (`CI` set) a missing
 * server is an error instead: `.ci/run` installs it, so CI never skips these tests.
 */
export function findNatsServer(): { readonly path: string } | { readonly skip: string } {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const path = found.status === 0 ? found.stdout.trim() : '';
  if (path !== '') return { path };
  const reason = 'nats-server is not installed (apt-get install -y nats-server): the JetStream tests need a real server';
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') throw new Error(reason);
  return { skip: reason };
}

/** A free TCP port on 127.0.0.1 (never 4222), as the kernel hands it out. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    if (port !== 0 && port !== defaultNatsPort) return port;
  }
}

/** Servers running now: if the test process ends without its `after` hooks (a crash, a signal), they go with it. */
const running = new Set<ChildProcess>();
const killRunning = (): void => {
  for (const child of running) child.kill('SIGKILL');
};
process.once('exit', killRunning);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killRunning();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/** How many times `NatsServers.start` tries, with new ports, when a node exits while starting. */
const startAttempts = 3;

/** A node exited before it was ready (a port taken meanwhile, most likely). */
class NodeExited extends Error {}

interface Ports {
  readonly client: number;
  readonly http: number;
  readonly route: number;
}

/** One `nats-server` process: its configuration stays, so a stopped node can start again with its data. */
export class NatsNode {
  readonly name: string;
  readonly dir: string;
  readonly ports: Ports;
  readonly #binary: string;
  readonly #config: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(binary: string, name: string, dir: string, ports: Ports, config: string) {
    this.#binary = binary;
    this.name = name;
    this.dir = dir;
    this.ports = ports;
    this.#config = join(dir, 'server.conf');
    writeFileSync(this.#config, config);
  }

  get url(): string {
    return `nats://127.0.0.1:${this.ports.client}`;
  }

  /** The server's own pid while it runs. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  /** Starts the process (not waiting for it to be ready: see `ready`). */
  start(): void {
    if (this.pid !== undefined) throw new Error(`${this.name} is running`);
    // The bare binary, no shell: child.pid is then the server's own pid, the one stop() signals.
    const child = spawn(this.#binary, ['-c', this.#config], { stdio: 'ignore' });
    this.#child = child;
    running.add(child);
    this.#exited = new Promise((resolve) =>
      child.once('exit', () => {
        running.delete(child);
        resolve();
      }),
    );
  }

  /** Resolves once `/healthz` answers ok; rejects after `readyMsMax` or when the process exits. */
  async ready(): Promise<void> {
    const deadline = Date.now() + readyMsMax;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (this.pid === undefined) throw new NodeExited(`${this.name} exited (see ${join(this.dir, 'server.log')})`);
      try {
        const response = await fetch(`http://127.0.0.1:${this.ports.http}/healthz`);
        last = await response.text();
        if (response.ok && (JSON.parse(last) as { status?: string }).status === 'ok') return;
      } catch (error) {
        last = String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`${this.name} not ready after ${readyMsMax} ms: ${last}`);
  }

  /** Sends `signal` to the server's pid (when it runs) and waits for it to exit; KILL after `stopMsMax`. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), stopMsMax)));
    const tooLate = await Promise.race([this.#exited.then(() => false), late]);
    clearTimeout(timer);
    if (tooLate && this.pid === pid) {
      process.kill(pid, 'SIGKILL');
      await this.#exited;
    }
  }
}

/** A set of servers started together: one node, or a cluster whose streams can have three replicas. */
export class NatsServers {
  readonly nodes: readonly NatsNode[];
  readonly root: string;

  private constructor(root: string, nodes: readonly NatsNode[]) {
    this.root = root;
    this.nodes = nodes;
  }

  /** The client URLs of every node, comma separated, as `--nats` and `JetStreamLog.open` take them. */
  get urls(): string {
    return this.nodes.map((node) => node.url).join(',');
  }

  node(name: string): NatsNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (node === undefined) throw new Error(`no node named ${name}`);
    return node;
  }

  /**
   * Starts `count` servers (1, or 3 for a cluster) with JetStream, bound to 127.0.0.1 on free ports, in a
   * fresh directory, and waits until each is healthy. `extraConfig` is added to every node's configuration
   * (authorization, TLS).
   */
  static async start(binary: string, count: 1 | 3, extraConfig = ''): Promise<NatsServers> {
    // A free port is free when asked, not when the server binds it: another test process may take it meanwhile
    // (files run in parallel), and the node exits. New ports, then, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsServers.#start(binary, count, extraConfig);
      } catch (error) {
        if (attempt === startAttempts || !(error instanceof NodeExited)) throw error;
      }
    }
  }

  static async #start(binary: string, count: 1 | 3, extraConfig: string): Promise<NatsServers> {
    const root = mkdtempSync(join(tmpdir(), 'sluice-nats-'));
    const ports: Ports[] = [];
    for (let i = 0; i < count; i++) {
      ports.push({ client: await freePort(), http: await freePort(), route: await freePort() });
    }
    const routes = ports.map((port) => `"nats-route://127.0.0.1:${port.route}"`).join(', ');
    const nodes = ports.map((port, i) => {
      const name = `n${i + 1}`;
      const dir = join(root, name);
      mkdirSync(join(dir, 'store'), { recursive: true });
      const cluster =
        count === 1 ? '' : `cluster { name: sluice-test, listen: "127.0.0.1:${port.route}", routes: [${routes}] }\n`;
      const config =
        `server_name: ${name}\nlisten: "127.0.0.1:${port.client}"\nhttp: "127.0.0.1:${port.http}"\n` +
        `log_file: "${join(dir, 'server.log')}"\n` +
        `jetstream { store_dir: "${join(dir, 'store')}", max_memory_store: 64MB, max_file_store: 1GB }\n` +
        cluster +
        extraConfig;
      return new NatsNode(binary, name, dir, port, config);
    });
    const servers = new NatsServers(root, nodes);
    try {
      for (const node of nodes) node.start();
      await Promise.all(nodes.map((node) => node.ready()));
    } catch (error) {
      await servers.stop();
      throw error;
    }
    return servers;
  }

  /** Stops every node by its own pid (TERM, then KILL) and removes the directory. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Servers for one test file: started in `before`, stopped in `after` (which node:test runs also when a test
 * failed or timed out), after everything the tests registered in `cleanup.ts` was undone. `servers()` is for use inside tests; `skip` is set when nats-server is missing (outside CI).
 * `extraConfig`, called in `before`, gives configuration to add to every node's.
 */
export function natsFixture(
  count: 1 | 3,
  extraConfig: () => string = () => '',
): { readonly skip: string | undefined; servers(): NatsServers } {
  const found = findNatsServer();
  const skip = 'skip' in found ? found.skip : undefined;
  let servers: NatsServers | undefined;
  if ('path' in found) {
    before(async () => {
      servers = await NatsServers.start(found.path, count, extraConfig());
    });
    // Also after a test that timed out, whose own `finally` never runs: what it registered is undone first.
    after(async () => {
      await cleanUpAll(new Set([...running].map((child) => child.pid ?? 0)));
      await servers?.stop();
    });
  }
  return {
    skip,
    servers() {
      if (servers === undefined) throw new Error('the NATS servers are not running');
      return servers;
    },
  };
}
