// `npm run demo`: a demo upstream repository on 127.0.0.1:8081 and `lazy-content serve` on 127.0.0.1:8080
// with its Pulp file repository imported under /content/demo-file/ and its yum repository under
// /content/demo-yum/, on embedded defaults (SQLite, local folders: nothing to install).
//   PORT         port of lazy-content                          (8080)
//   UPSTREAM_URL a Pulp file repository to import instead of the demo's (no demo upstream is started)
//   DATA_DIR     lazy-content's data folder                    (./.lazy-content)
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDemoUpstream } from './demo-upstream/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'packages', 'core', 'dist', 'cli', 'main.js');
const port = process.env.PORT ?? '8080';
const dataDir = process.env.DATA_DIR ?? './.lazy-content';

let upstream;
let fileUrl = process.env.UPSTREAM_URL;
let yumUrl;
if (!fileUrl) {
  try {
    upstream = await startDemoUpstream({ port: 8081 });
  } catch (err) {
    console.error(`demo: could not start the demo upstream on 127.0.0.1:8081 (${err.code ?? err.message}); set UPSTREAM_URL to use another repository`);
    process.exit(1);
  }
  fileUrl = upstream.fileRepoUrl;
  yumUrl = upstream.yumRepoUrl;
  console.log(`demo upstream on ${upstream.url}`);
}

const args = ['serve', '--port', port, '--data-dir', dataDir, '--import', fileUrl, '--type', 'file', '--prefix', '/content/demo-file/'];
if (yumUrl) args.push('--import', yumUrl, '--type', 'yum', '--prefix', '/content/demo-yum/');
const server = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LAZY_CONTENT_LOG_LEVEL: process.env.LAZY_CONTENT_LOG_LEVEL ?? 'warn' } });

let base;
let imports = 0;
for await (const line of createInterface({ input: server.stdout })) {
  console.log(line);
  const m = /listening on (\S+)\/content\//.exec(line);
  if (m) base = m[1];
  if (line.includes(' entries (') && ++imports === (yumUrl ? 2 : 1)) break;
}
server.stdout.resume();
if (!base) {
  console.error('demo: lazy-content serve did not start');
  await upstream?.close();
  process.exit(1);
}
const first = yumUrl ? 'isos/disk-4MiB.iso' : '<a path from the manifest>';
console.log(`
Try:
  curl -sL ${base}/content/demo-file/${first} | sha256sum     # first time: streamed from the upstream
  curl -sI ${base}/content/demo-file/${first}                  # a moment later: saved, served directly
  curl -s  ${base}/content/demo-file/PULP_MANIFEST
  curl -sL -r 0-99 ${base}/content/demo-file/${first} | wc -c
${yumUrl ? `  curl -sL ${base}/content/demo-yum/repodata/repomd.xml
  dnf --repofrompath=demo,${base}/content/demo-yum/ --repo=demo list available   # where dnf is installed
` : ''}  node packages/core/dist/cli/main.js catalog ls --data-dir ${dataDir}
Stop with Ctrl-C.`);

const stop = () => {
  server.kill('SIGTERM');
  server.once('exit', () => void Promise.resolve(upstream?.close()).finally(() => process.exit(0)));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
