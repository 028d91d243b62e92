import type { Writable } from 'node:stream';
import { DOWNLOAD_POLICIES, type DownloadPolicy } from '../catalog/types.js';
import { importRepository, type RepositoryImportProgress } from '../importers/import-repository.js';
import type { LazyContent } from '../lazy-content.js';
import { oneOf, parse, str, UsageError } from './args.js';
import { adminInstance, commonOptions, helpOf } from './common.js';

/** One repository to import: where it is, what kind, where it appears, and its remote's policy. */
export interface ImportSpec {
  url: string;
  type: 'file' | 'yum';
  /** Below the content prefix, with a trailing slash: `demo-file/`. */
  prefix: string;
  policy: DownloadPolicy;
  remote: string;
}

/** Imports one repository, printing progress to `out` (in place on a terminal) and a summary. */
export async function runImport(lc: LazyContent, spec: ImportSpec, out: Writable & { isTTY?: boolean }): Promise<void> {
  let last = 0;
  const result = await importRepository(lc, {
    url: spec.url,
    type: spec.type,
    prefix: spec.prefix,
    remote: spec.remote,
    policy: spec.policy,
    onProgress: (p: RepositoryImportProgress) => {
      const now = Date.now();
      if (!out.isTTY || now - last < 200) return;
      last = now;
      const detail =
        p.phase === 'downloading'
          ? `${p.saved + p.failed}/${p.toDownload} files`
          : p.phase === 'reading'
            ? `${p.found}${p.expected === null ? '' : `/${p.expected}`} entries`
            : `${p.entries} entries`;
      out.write(`\r${spec.prefix}: ${p.phase} ${detail}\u001b[K`);
    },
  });
  if (out.isTTY) out.write('\r\u001b[K');
  out.write(
    `${spec.url} → /content/${spec.prefix}: ${result.total} entries (${result.added} added, ${result.updated} updated, ${result.removed} removed)` +
      `${spec.policy === 'immediate' ? `, ${result.progress.saved} downloaded, ${result.progress.failed} failed` : ''}` +
      `${spec.policy === 'background' ? `, ${result.progress.scheduled} scheduled for saving` : ''}\n`,
  );
}

const IMPORT_HELP = helpOf(
  'import URL --prefix /content/NAME/ [--type file|yum] [--policy P] [--remote NAME]',
  `  --type T           file (Pulp PULP_MANIFEST) or yum                      [file]
  --prefix P         where it appears, e.g. /content/NAME/                 [required]
  --policy P         on_demand, streamed, background or immediate          [on_demand]
  --remote NAME      the remote's name in the catalog                      [NAME from --prefix]`,
);

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...commonOptions, type: { type: 'string' }, prefix: { type: 'string' }, policy: { type: 'string' }, remote: { type: 'string' } }, 1);
  if (values.help) return (process.stdout.write(IMPORT_HELP), 0);
  const url = positionals[0];
  if (!url) throw new UsageError('import needs the URL of a repository');
  try {
    new URL(url);
  } catch {
    throw new UsageError(`the repository URL must be absolute (got "${url}")`);
  }
  const rawPrefix = str(values, 'prefix');
  if (!rawPrefix) throw new UsageError('import needs --prefix /content/NAME/');
  const withSlash = rawPrefix.endsWith('/') ? rawPrefix : `${rawPrefix}/`;
  if (!withSlash.startsWith('/content/') || withSlash === '/content/') throw new UsageError(`--prefix must be below /content/, such as /content/NAME/ (got "${rawPrefix}")`);
  const prefix = withSlash.slice('/content/'.length);
  const type = oneOf(values, 'type', ['file', 'yum'] as const, 'file');
  const policy = oneOf(values, 'policy', DOWNLOAD_POLICIES, 'on_demand');
  const remote = str(values, 'remote') ?? (prefix.replace(/\/$/, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'default');
  const instance = await adminInstance(values);
  try {
    await runImport(instance.lc, { url, type, prefix, policy, remote }, process.stdout);
  } finally {
    await instance.close();
  }
  return 0;
}
