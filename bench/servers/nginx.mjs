// nginx serving ROOT at /content/ (the ceiling): writes a config into a temporary folder, runs
// `nginx -g 'daemon off;'` in the foreground, prints "ready <port>" once the port answers.
// worker_processes auto, sendfile on, access_log off; pid, logs and temp paths inside the temporary folder.
// NGINX=/path/to/nginx overrides the binary (default /usr/sbin/nginx).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fail, ready, serverArgs } from './common.mjs';

const args = serverArgs();
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';

function freePort(host) {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function answers(port, host) {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const port = args.port || (await freePort(args.host));
// BENCH_TMP: a folder the caller removes, so that nothing is left behind even if this process is SIGKILLed.
const dir = mkdtempSync(path.join(process.env.BENCH_TMP ?? tmpdir(), 'lazy-content-bench-nginx-'));
const p = (name) => path.join(dir, name);
const root = args.root.endsWith('/') ? args.root : `${args.root}/`;
// Workers of a root master run as another user unless told otherwise; they must be able to read ROOT.
const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
const conf = `${user}worker_processes auto;
pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path ${p('body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  server {
    listen ${args.host}:${port};
    location /content/ { alias ${root}; }
  }
}
`;
writeFileSync(p('nginx.conf'), conf);

const child = spawn(NGINX, ['-p', dir, '-e', p('error.log'), '-c', p('nginx.conf'), '-g', 'daemon off;'], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
let exited = false;
child.on('error', (err) => fail(`cannot run ${NGINX}: ${err.message}`));
child.on('exit', (code, signal) => {
  exited = true;
  rmSync(dir, { recursive: true, force: true });
  process.exit(code ?? (signal ? 1 : 0));
});
const stop = () => {
  if (!exited) child.kill('SIGTERM'); // fast shutdown of master and workers
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.once('exit', () => {
  if (!exited) child.kill('SIGKILL');
});

const deadline = Date.now() + 10_000;
while (!(await answers(port, args.host))) {
  if (exited) process.exit(1);
  if (Date.now() > deadline) {
    stop();
    fail('nginx did not start listening within 10 s');
  }
  await new Promise((r) => setTimeout(r, 50));
}
ready(port);
