// `npm run demo`: serves a small demo repository on embedded defaults (nothing to install), then prints
// what to try. PORT and DATA_DIR change where it listens and where it keeps its files.
import { mkdir, writeFile, access } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';

const dataDir = path.resolve(process.env.DATA_DIR ?? './.lazy-content');
const port = process.env.PORT ?? '8080';
const demo = path.join(dataDir, 'content', 'demo');

const files = {
  'README.txt': 'A demo repository served by lazy-content.\n',
  'repodata/repomd.xml': '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo"/>\n',
  'Packages/demo-1.0-1.noarch.rpm': randomBytes(256 * 1024),
};
for (const [name, data] of Object.entries(files)) {
  const file = path.join(demo, name);
  try {
    await access(file);
  } catch {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
  }
}

process.env.DATA_DIR = dataDir;
process.env.PORT = port;
await import('./express/server.mjs');
const base = `http://127.0.0.1:${port}`;
console.log(`
Try:
  curl -i ${base}/content/demo/README.txt
  curl -I ${base}/content/demo/Packages/demo-1.0-1.noarch.rpm
  curl -s -r 0-99 ${base}/content/demo/Packages/demo-1.0-1.noarch.rpm | wc -c
  curl -i --path-as-is ${base}/content/../etc/passwd      # 400
Stop with Ctrl-C.`);
